package com.casvit.demo

import android.Manifest
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Bundle
import android.util.Log
import android.util.Size
import android.view.View
import android.widget.Button
import android.widget.CompoundButton
import android.widget.ImageView
import android.widget.SeekBar
import android.widget.Switch
import android.widget.TextView
import android.widget.Toast
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import com.casvit.core.ArgbImage
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Live classification of camera frames (CameraX preview + analysis) or of a picked image,
 * with top-5 labels, per-frame latency and a CPU/GPU switch. Every model call runs on
 * [worker], a single thread that owns the [Classifier].
 */
class MainActivity : ComponentActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var assets: ModelAssets? = null      // worker thread only
    private var classifier: Classifier? = null   // worker thread only
    @Volatile private var liveMode = true
    private var analysisFailed = false           // worker thread only: the last frame failed

    private lateinit var preview: PreviewView
    private lateinit var stillImage: ImageView
    private lateinit var modelInfo: TextView
    private lateinit var results: TextView
    private lateinit var latency: TextView
    private lateinit var status: TextView
    private lateinit var gpuSwitch: Switch
    private lateinit var threadsLabel: TextView
    private lateinit var threads: SeekBar
    private lateinit var liveButton: Button
    private var cameraProvider: ProcessCameraProvider? = null

    private val requestCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showStatus(getString(R.string.permission_denied))
    }

    private val pickImage = registerForActivityResult(ActivityResultContracts.GetContent()) { uri ->
        if (uri != null) classifyPicked(uri)
    }

    private val onGpuToggled = CompoundButton.OnCheckedChangeListener { _, _ -> rebuildClassifier() }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        stillImage = findViewById(R.id.still_image)
        modelInfo = findViewById(R.id.model_info)
        results = findViewById(R.id.results)
        latency = findViewById(R.id.latency)
        status = findViewById(R.id.status)
        gpuSwitch = findViewById(R.id.gpu_switch)
        threadsLabel = findViewById(R.id.threads_label)
        threads = findViewById(R.id.threads)
        liveButton = findViewById(R.id.live_camera)

        threads.progress = DEFAULT_THREADS - 1
        threadsLabel.text = getString(R.string.threads, selectedThreads())
        threads.setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
            override fun onProgressChanged(bar: SeekBar, progress: Int, fromUser: Boolean) {
                threadsLabel.text = getString(R.string.threads, selectedThreads())
            }
            override fun onStartTrackingTouch(bar: SeekBar) = Unit
            override fun onStopTrackingTouch(bar: SeekBar) = rebuildClassifier()
        })
        gpuSwitch.setOnCheckedChangeListener(onGpuToggled)
        findViewById<Button>(R.id.pick_image).setOnClickListener { pickImage.launch("image/*") }
        liveButton.setOnClickListener { showLive() }

        loadModel()
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    override fun onDestroy() {
        super.onDestroy()
        cameraProvider?.unbindAll() // no more frames are handed to the worker after its shutdown
        worker.execute { classifier?.close(); classifier = null }
        worker.shutdown()
    }

    private fun selectedThreads() = threads.progress + 1

    private fun requestedBackend(): Backend = if (gpuSwitch.isChecked) Backend.Gpu else Backend.Cpu(selectedThreads())

    private fun loadModel() {
        val backend = requestedBackend()
        val cpuThreads = selectedThreads()
        worker.execute {
            try {
                val loaded = ModelAssets.load(this)
                if (loaded == null) {
                    runOnUiThread { modelInfo.setText(R.string.no_model) }
                    return@execute
                }
                assets = loaded
                val info = loaded.info
                runOnUiThread {
                    val summary = getString(R.string.model_info, info.variant, info.precision, info.input.height, info.input.width, info.input.dtype.jsonName)
                    modelInfo.text = if (info.forDeployment) summary else summary + "\n" + getString(R.string.not_for_deployment, info.weightsSource)
                }
                switchClassifier(backend, cpuThreads)
            } catch (e: Exception) {
                runOnUiThread { modelInfo.text = getString(R.string.model_error, e.message ?: e.javaClass.simpleName) }
            }
        }
    }

    private fun rebuildClassifier() {
        val backend = requestedBackend()
        val cpuThreads = selectedThreads()
        worker.execute {
            try {
                switchClassifier(backend, cpuThreads)
            } catch (e: Exception) {
                runOnUiThread { showStatus(getString(R.string.model_error, e.message ?: e.javaClass.simpleName)) }
            }
        }
    }

    /** Worker thread: replaces the classifier; shows the fallback message when the GPU could not be used. */
    private fun switchClassifier(backend: Backend, cpuThreads: Int) {
        val loaded = assets ?: return
        classifier?.close()
        classifier = null
        val (created, fallbackReason) = Classifier.create(loaded, backend, cpuThreads)
        classifier = created
        runOnUiThread {
            if (fallbackReason != null) {
                val message = getString(R.string.gpu_fallback, fallbackReason)
                showStatus(message)
                Toast.makeText(this, message, Toast.LENGTH_LONG).show()
                gpuSwitch.setOnCheckedChangeListener(null)
                gpuSwitch.isChecked = false
                gpuSwitch.setOnCheckedChangeListener(onGpuToggled)
            } else {
                status.visibility = View.GONE
            }
            if (liveMode) results.setText(R.string.waiting_for_frames)
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()
                cameraProvider = provider
                val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
                val analysis = ImageAnalysis.Builder()
                    .setResolutionSelector(analysisResolution())
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build()
                analysis.setAnalyzer(worker) { frame -> analyze(frame) }
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
            } catch (e: Exception) {
                showStatus(getString(R.string.camera_error, e.message ?: e.javaClass.simpleName))
            }
        }, ContextCompat.getMainExecutor(this))
    }

    /**
     * Frames near [ANALYSIS_SIZE]: the model sees at most a few hundred pixels a side after the
     * record's resize and crop, so larger frames would only cost conversion time.
     */
    private fun analysisResolution(): ResolutionSelector = ResolutionSelector.Builder()
        .setResolutionStrategy(ResolutionStrategy(ANALYSIS_SIZE, ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER))
        .build()

    /** Worker thread: one camera frame. A failing frame is reported and the analysis keeps running. */
    private fun analyze(frame: ImageProxy) {
        frame.use {
            val current = classifier ?: return
            if (!liveMode) return
            try {
                val result = current.classify(it.toUprightArgbImage())
                val recovered = analysisFailed
                analysisFailed = false
                runOnUiThread {
                    if (recovered) status.visibility = View.GONE  // clear only our own error message
                    if (liveMode) show(result, current.backend)
                }
            } catch (e: Exception) {
                Log.e(TAG, "frame analysis failed", e)
                analysisFailed = true
                runOnUiThread { showStatus(getString(R.string.analysis_error, e.message ?: e.javaClass.simpleName)) }
            }
        }
    }

    private fun classifyPicked(uri: Uri) {
        liveMode = false
        cameraProvider?.unbindAll()
        preview.visibility = View.GONE
        stillImage.visibility = View.VISIBLE
        liveButton.isEnabled = true
        worker.execute {
            try {
                val image: ArgbImage = decodeUpright(this, uri)
                val bitmap = image.toBitmap()
                val current = classifier
                val result = current?.classify(image)
                runOnUiThread {
                    stillImage.setImageBitmap(bitmap)
                    if (current != null && result != null) show(result, current.backend)
                }
            } catch (e: Exception) {
                runOnUiThread { showStatus(getString(R.string.image_error, e.message ?: e.javaClass.simpleName)) }
            } catch (e: OutOfMemoryError) {
                runOnUiThread { showStatus(getString(R.string.image_error, "too large to decode at full resolution")) }
            }
        }
    }

    private fun showLive() {
        liveMode = true
        stillImage.visibility = View.GONE
        stillImage.setImageDrawable(null)
        preview.visibility = View.VISIBLE
        liveButton.isEnabled = false
        results.setText(R.string.waiting_for_frames)
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun show(result: Classification, backend: Backend) {
        results.text = result.top.withIndex().joinToString("\n") { (rank, p) ->
            String.format(Locale.US, "%d. %-28s %6.2f%%", rank + 1, p.label.take(28), p.probability * 100f)
        }
        val backendName = when (backend) {
            is Backend.Cpu -> getString(R.string.backend_cpu, backend.threads)
            Backend.Gpu -> getString(R.string.backend_gpu)
        }
        latency.text = getString(R.string.latency, backendName, result.preprocessMs, result.inferenceMs, result.totalMs)
    }

    private fun showStatus(message: String) {
        status.text = message
        status.visibility = View.VISIBLE
    }

    private companion object {
        const val DEFAULT_THREADS = 4
        const val TAG = "CasvitDemo"
        val ANALYSIS_SIZE = Size(640, 480)
    }
}
