package llama

// KVBytesPerValue is what the KV cache keeps of each key and value element:
// a float32 (sequence.k and sequence.v). Memory estimates (package check,
// `inferd check`) use it; a test holds it to the cache's element type.
const KVBytesPerValue = 4
