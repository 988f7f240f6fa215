package engine

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Sampler picks the next token from logits: greedy at temperature 0,
// otherwise a draw from the softmax at that temperature restricted to the
// TopK most likely tokens and then to the smallest set of those whose
// probability reaches topP (nucleus sampling).
// A seeded Sampler draws the same tokens for the same logits.
type Sampler struct {
	Temperature float32
	TopP        float32
	// TopK, when positive, first keeps only the K most likely tokens.
	TopK  int
	rng   *rand.Rand
	idx   []int
	probs []float32
}

// NewSampler returns a sampler; seed nil draws a random seed.
func NewSampler(temperature, topP float32, seed *int64) *Sampler {
	var s1 uint64
	if seed != nil {
		s1 = uint64(*seed)
	} else {
		s1 = rand.Uint64()
	}
	if topP <= 0 || topP > 1 {
		topP = 1
	}
	return &Sampler{Temperature: temperature, TopP: topP, rng: rand.New(rand.NewPCG(s1, 0x736c6d6f7073))}
}

// Sample returns the next token.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.Temperature <= 0 {
		best := 0
		for i, l := range logits {
			if l > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	// Softmax at the temperature, stable against large logits.
	maxL := float32(math.Inf(-1))
	for _, l := range logits {
		maxL = max(maxL, l)
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float32, len(logits))
		s.idx = make([]int, len(logits))
	}
	probs, idx := s.probs[:len(logits)], s.idx[:len(logits)]
	var sum float64
	for i, l := range logits {
		p := float32(math.Exp(float64((l - maxL) / s.Temperature)))
		probs[i] = p
		idx[i] = i
		sum += float64(p)
	}
	n := len(idx)
	if (s.TopK > 0 && s.TopK < n) || s.TopP < 1 {
		// Only the head of the order matters: a partial selection would do,
		// but a full sort of a vocabulary is microseconds beside a forward pass.
		sort.Slice(idx, func(a, b int) bool { return probs[idx[a]] > probs[idx[b]] })
	}
	if s.TopK > 0 && s.TopK < n {
		n = s.TopK
		sum = 0
		for _, j := range idx[:n] {
			sum += float64(probs[j])
		}
	}
	total := sum
	if s.TopP < 1 {
		var acc float64
		for i, j := range idx[:n] {
			acc += float64(probs[j])
			if acc >= float64(s.TopP)*sum {
				n = i + 1
				break
			}
		}
		total = 0
		for _, j := range idx[:n] {
			total += float64(probs[j])
		}
	}
	r := s.rng.Float64() * total
	for _, j := range idx[:n] {
		r -= float64(probs[j])
		if r <= 0 {
			return int32(j)
		}
	}
	return int32(idx[n-1])
}
