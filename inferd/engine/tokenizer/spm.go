package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// spaceMark is U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's stand-in for a
// space: it makes a space part of the token that follows it ("▁world").
const spaceMark = "\u2581"

// spmSymbol is a run of text in the linked list being merged.
type spmSymbol struct {
	start, end int32 // byte range in the escaped text; empty once merged away
	prev, next int32 // neighbours, -1 at the ends
	node       int32 // the merge-tree node the symbol stands for
}

// spmNode records how a symbol was built, so that a merged symbol that must
// not be output (an unused token) can be split back into its two halves.
type spmNode struct {
	start, end  int32
	left, right int32 // child nodes, -1 for a single character
}

// spmCandidate is an adjacent pair whose concatenation is a token.
type spmCandidate struct {
	score       float32
	left, right int32 // symbol indices
	size        int32 // byte length of the pair when queued, to detect staleness
}

// before orders candidates by score, highest first, then leftmost first.
func (c spmCandidate) before(o spmCandidate) bool {
	if c.score != o.score {
		return c.score > o.score
	}
	return c.left < o.left
}

// escapeSPM replaces every space with the space mark and, when prefix is set,
// starts the text with one, so that the first word looks like every other
// word ("▁Hello▁world").
func escapeSPM(text string, prefix bool) string {
	var b strings.Builder
	b.Grow(len(text) + (strings.Count(text, " ")+1)*(len(spaceMark)-1) + 1)
	if prefix {
		b.WriteString(spaceMark)
	}
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			b.WriteString(spaceMark)
		} else {
			b.WriteByte(text[i])
		}
	}
	return b.String()
}

// encodeSPM appends the tokens of text, which holds no special tokens, the
// way llama.cpp's SentencePiece BPE does: start from single characters and
// keep merging the adjacent pair whose concatenation is the highest-scoring
// token, then spell any character that is not a token as byte tokens.
func (t *Tokenizer) encodeSPM(out []int32, text string, prefix bool) []int32 {
	text = escapeSPM(text, prefix)
	if text == "" {
		return out
	}
	symbols := make([]spmSymbol, 0, len(text))
	for i := 0; i < len(text); {
		_, n := utf8.DecodeRuneInString(text[i:])
		k := int32(len(symbols))
		symbols = append(symbols, spmSymbol{start: int32(i), end: int32(i + n), prev: k - 1, next: k + 1, node: k})
		i += n
	}
	symbols[len(symbols)-1].next = -1
	nodes := make([]spmNode, len(symbols), 2*len(symbols))
	for i, s := range symbols {
		nodes[i] = spmNode{start: s.start, end: s.end, left: -1, right: -1}
	}

	q := make(queue[spmCandidate], 0, len(symbols))
	consider := func(left, right int32) {
		if left < 0 || right < 0 {
			return
		}
		l, r := symbols[left], symbols[right]
		id, ok := t.ids[text[l.start:r.end]]
		if !ok || !t.mergeable(id) {
			return
		}
		q.push(spmCandidate{score: t.scores[id], left: left, right: right, size: r.end - l.start})
	}
	for i := 1; i < len(symbols); i++ {
		consider(int32(i-1), int32(i))
	}
	for len(q) > 0 {
		c := q.pop()
		left, right := &symbols[c.left], &symbols[c.right]
		// Either half may have been merged with something else since the
		// pair was queued: then it is empty, or the pair's length changed.
		if left.end == left.start || right.end == right.start || right.end-left.start != c.size || left.next != c.right {
			continue
		}
		nodes = append(nodes, spmNode{start: left.start, end: right.end, left: left.node, right: right.node})
		left.node = int32(len(nodes) - 1)
		left.end = right.end
		right.end = right.start
		left.next = right.next
		if right.next >= 0 {
			symbols[right.next].prev = c.left
		}
		consider(left.prev, c.left)
		consider(c.left, left.next)
	}

	for i := int32(0); i >= 0; i = symbols[i].next {
		out = t.emitSPM(out, text, nodes, symbols[i].node)
	}
	return out
}

// emitSPM appends the tokens for one final symbol. Every merge produced a
// token, but SentencePiece never outputs an unused token: like SentencePiece
// (and unlike llama.cpp, which outputs whatever it merged), such a symbol is
// split back into the two halves it was merged from. A single character that
// is not a token is spelled in byte tokens.
func (t *Tokenizer) emitSPM(out []int32, text string, nodes []spmNode, node int32) []int32 {
	n := nodes[node]
	piece := text[n.start:n.end]
	if id, ok := t.ids[piece]; ok && t.outputtable(id) {
		return append(out, id)
	}
	if n.left >= 0 {
		out = t.emitSPM(out, text, nodes, n.left)
		return t.emitSPM(out, text, nodes, n.right)
	}
	for i := 0; i < len(piece); i++ {
		if t.byteTokens[piece[i]] < 0 {
			// Without byte tokens the character is lost; say so once with the
			// unknown token rather than once per byte.
			if t.unk >= 0 {
				out = append(out, t.unk)
			}
			return out
		}
	}
	for i := 0; i < len(piece); i++ {
		out = append(out, t.byteTokens[piece[i]])
	}
	return out
}
