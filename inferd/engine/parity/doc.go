// Package parity holds the test that proves the engine against llama.cpp:
// TestParityWithLlamaCpp builds llama.cpp from the shared source snapshot
// (hack/build-llama-cpp.sh, cached outside the clone), runs random-weight
// models of every architecture and tensor type the engine runs through both
// engines on the same tokens and compares the logits of every position, and
// compares the project's tokenizers with llama.cpp's on the snapshot's
// vocabularies. `make parity` prints its table; `make test` runs it whenever
// the snapshot is present and says what was not checked when it is not.
package parity
