"""askta indexer: the entry schema, the knowledge base on disk, embeddings and the FAISS index."""
