"""What every layer uses: atomic writes, model files, runs and checkpoints, progress bars,
provenance, precision and the allocator. Nothing here imports another kfkd_kit layer."""
from .._lazy import exports

EXPORTS = {
    "atomic": ("atomic_write", "write_json", "write_csv", "write_section", "create_unique"),
    "skopsfile": ("TRUSTED_TYPES",),
    "modelfile": ("save_model", "load_model", "load_skops", "json_path", "read_record",
                  "model_record", "check_sha256", "check_keypoint_model", "TRUST_HINT"),
    "runs": ("Resume", "SlotCheckpoint", "checkpoint_callbacks", "stop_on_ctrl_c"),
    "progress": ("bar",),
    "provenance": ("describe_machine", "cpu_model", "library_versions"),
    "precision": ("PRECISIONS", "bf16_support", "cpu_bf16_support", "autocast"),
    "malloc": ("reuse_freed_memory",),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
