"""Keypoints on photos: reading them, finding faces, framing each as a 96x96 crop and
mapping the keypoints back, pass after pass; drawing them; the ONNX graph and its
torch-free runner; the same on video frames, with tracks and smoothing."""
from .._lazy import exports

EXPORTS = {
    "photos": ("Photo", "PhotoError", "PhotoTooLarge", "read_photo", "decode_photo", "list_images",
               "image_suffixes"),
    "faces": ("Face", "make_detector", "merge_turns", "DETECTORS"),
    "framing": ("FacePatch", "warp_to_crop", "mean_layout", "layout_of"),
    "onnxmodel": ("OnnxKeypoints", "check_onnx_sha256"),
    "onnxgraph": ("write_graph", "check_batch", "mirror_sum_of"),
    "mtcnngraph": ("mtcnn_graphs",),
    "mtcnnonnx": ("OnnxMTCNN", "OnnxMTCNNDetector"),
    "align": ("predict_photos", "SavedModel", "Summary"),
    "annotate": ("write_annotated",),   # not annotate(): the module's own name
    "video": ("predict_videos", "write_annotated_video", "is_video", "VideoError"),
    "tracking": ("Tracker",),
    "smoothing": ("OneEuro", "OneEuroFilter", "smooth_tracks"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
