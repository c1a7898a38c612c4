"""Embeddings and search: the MiniLM embedder (ONNX on CPU, torch on GPU), the vector index, the tf-idf index."""
