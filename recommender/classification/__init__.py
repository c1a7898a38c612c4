"""Category prediction: text preprocessing and the SHA-RNN network (shared with training), and inference."""
