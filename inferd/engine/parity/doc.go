// Package parity holds the test that proves the engine against llama.cpp:
// TestParityWithLlamaCpp takes llama.cpp as built from the shared source snapshot
// (hack/build-llama-cpp.sh, cached outside the clone), runs random-weight
// models of every architecture and tensor type the engine runs through both
// engines on the same tokens and compares the logits of every position, and
// compares the project's tokenizers with llama.cpp's on the snapshot's
// vocabularies. `make parity` builds llama.cpp when it is not built and
// prints the whole table (each quantized row's noise floor too); go test
// runs the test whenever the build is there (make test builds it first,
// cached) and skips, saying what was not checked, when it is not.
package parity
