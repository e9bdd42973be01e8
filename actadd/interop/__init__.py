"""Other tools' formats: GGUF control vectors (llama.cpp, repeng) and running them in llama.cpp."""
