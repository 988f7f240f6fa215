package tokenizer

// ranked is a merge candidate that knows its order: a.before(b) when a
// merges first.
type ranked[T any] interface {
	before(T) bool
}

// queue is a binary heap of merge candidates, first to merge at the root.
// Both tokenizers' merge loops use it. Unlike container/heap it keeps the
// values in a typed slice, so a push or a pop boxes nothing and allocates
// only when the slice grows.
type queue[T ranked[T]] []T

func (q *queue[T]) push(c T) {
	*q = append(*q, c)
	h := *q
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (q *queue[T]) pop() T {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	*q = h
	for i := 0; ; {
		first := i
		if l := 2*i + 1; l < n && h[l].before(h[first]) {
			first = l
		}
		if r := 2*i + 2; r < n && h[r].before(h[first]) {
			first = r
		}
		if first == i {
			break
		}
		h[i], h[first] = h[first], h[i]
		i = first
	}
	return top
}
