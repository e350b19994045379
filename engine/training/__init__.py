"""Fine-tuning on verified data: packed SFT (full or LoRA) with atomic, resumable checkpoints."""
