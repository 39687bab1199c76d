//! Loom models for memscope live in tests/.
