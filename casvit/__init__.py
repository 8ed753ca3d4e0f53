"""CAS-ViT in pure PyTorch: official-checkpoint compatible, with a deploy form
made of conv, sigmoid, ReLU/GELU and elementwise ops only."""

from .checkpoint import CheckpointError, infer_config, load_checkpoint, model_from_checkpoint, read_checkpoint
from .deploy import DeployCASViT, InputNormalization, deploy, op_census
from .layers import AdditiveBlock, CASAtt
from .model import VARIANTS, CASViT, check_input_size, create_model
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, official_default

__all__ = [
    "CASAtt",
    "AdditiveBlock",
    "CASViT",
    "VARIANTS",
    "create_model",
    "check_input_size",
    "load_checkpoint",
    "model_from_checkpoint",
    "read_checkpoint",
    "infer_config",
    "CheckpointError",
    "deploy",
    "DeployCASViT",
    "InputNormalization",
    "op_census",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Preprocessing",
    "official_default",
]
