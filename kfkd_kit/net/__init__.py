"""One net as a scikit-learn estimator: ``KeypointNet`` (skorch) and what it is made of:
the torch modules, masked losses, resident batches with augmentation, callbacks, the CUDA
fast path, the pixel-scaling pipeline, the RMSE metric, and how models nest."""
from .._lazy import exports

EXPORTS = {
    "estimator": ("KeypointNet", "default_device", "flip_axis_of"),
    "nets": ("MLP", "CNN", "BNCNN", "SoftArgmax", "transfer_weights"),
    "losses": ("MaskedMSELoss", "MaskedL1Loss"),
    "batches": ("ResidentBatches",),
    "budget": ("TimeBudget",),
    "mirror_axis": ("MirrorAxis",),
    "callbacks": ("EpochTable", "EarlyStopping", "LinearSchedule", "OneCycle",
                  "PretrainedLayers", "TrainValidRatio", "WeightAverage"),
    "pipeline": ("PixelScaler", "make_pipeline"),
    "metrics": ("PixelRMSEScore", "masked_rmse_px"),
    "nested": ("histories", "net_prefix", "inner_net"),   # nets(): kfkd_kit.net.nested.nets
    "settings": ("OVERRIDES", "configure", "load_params", "apply_params"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
