"""Other tools' formats: GGUF control vectors (llama.cpp, repeng) and running them in llama.cpp."""

__all__: list[str] = []  # the package exports nothing itself: import its modules
