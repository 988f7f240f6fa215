package tokenizer

import "unicode/utf8"

// ByteAlphabet is GPT-2's byte-to-unicode map: byte-level BPE vocabularies
// spell every byte as one printable character so that a token is a readable
// string. Printable Latin-1 bytes stand for themselves; the other 68 bytes
// (controls, space, DEL, NBSP, soft hyphen) take the code points from U+0100
// upwards, in byte order, so space is "Ġ" (U+0120) and \n is "Ċ" (U+010A).
func ByteAlphabet() (enc [256]rune) {
	next := rune(256)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			enc[b] = rune(b)
		} else {
			enc[b] = next
			next++
		}
	}
	return enc
}

// merge is one BPE merge rule: the pair it applies to is its key in
// Tokenizer.merges.
type merge struct {
	rank   int32 // lower merges first
	result int32 // the token the pair becomes
}

// pairKey packs two token ids into a map key.
func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// bpeSymbol is a token in a word being merged, in a linked list so that a
// merge is O(1).
type bpeSymbol struct {
	id         int32 // -1 for a byte with no token, which never merges
	prev, next int32 // neighbours in the word, -1 at its ends
}

// bpeCandidate is an adjacent pair of symbols that a merge rule applies to.
type bpeCandidate struct {
	rank        int32
	left, right int32 // symbol indices
	leftID      int32 // the ids the pair had when queued, to detect staleness
	rightID     int32
	result      int32
}

// before orders candidates by rank, then leftmost first, as the reference
// implementations do when one rule applies at several places in a word.
func (c bpeCandidate) before(o bpeCandidate) bool {
	if c.rank != o.rank {
		return c.rank < o.rank
	}
	return c.left < o.left
}

// bpeScratch holds the buffers of one Encode call, reused across its words.
type bpeScratch struct {
	symbols []bpeSymbol
	queue   queue[bpeCandidate]
	spelled []byte // a word in the byte alphabet, for wholeWords
}

// alphabet is byteAlphabet's table, for spelling words.
var alphabet = ByteAlphabet()

// consider queues the pair of symbols left and right if a rule merges them.
func (s *bpeScratch) consider(t *Tokenizer, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	l, r := s.symbols[left].id, s.symbols[right].id
	if l < 0 || r < 0 {
		return
	}
	if m, ok := t.merges[pairKey(l, r)]; ok {
		s.queue.push(bpeCandidate{rank: m.rank, left: left, right: right, leftID: l, rightID: r, result: m.result})
	}
}

// encodeBPE appends the tokens of text, which holds no special tokens.
func (t *Tokenizer) encodeBPE(out []int32, text string) []int32 {
	var s bpeScratch
	t.pre(text, func(start, end int) {
		out = t.encodeWord(out, text[start:end], &s)
	})
	return out
}

// encodeWord merges the bytes of one pre-tokenized word. Working on token ids
// rather than strings is possible because a merge rule only exists when both
// halves and the result are tokens, and it avoids building strings.
func (t *Tokenizer) encodeWord(out []int32, word string, s *bpeScratch) []int32 {
	if word == "" {
		return out
	}
	if t.wholeWords {
		s.spelled = s.spelled[:0]
		for i := 0; i < len(word); i++ {
			s.spelled = utf8.AppendRune(s.spelled, alphabet[word[i]])
		}
		if id, ok := t.ids[string(s.spelled)]; ok {
			return append(out, id)
		}
	}
	symbols := s.symbols[:0]
	for i := 0; i < len(word); i++ {
		symbols = append(symbols, bpeSymbol{id: t.byteTokens[word[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	symbols[len(symbols)-1].next = -1
	s.symbols = symbols

	s.queue = s.queue[:0]
	for i := 1; i < len(symbols); i++ {
		s.consider(t, int32(i-1), int32(i))
	}
	for len(s.queue) > 0 {
		c := s.queue.pop()
		left, right := &symbols[c.left], &symbols[c.right]
		// A symbol that has been merged since the candidate was queued either
		// died (id -1 below) or stands for a longer token with another id.
		if left.id != c.leftID || right.id != c.rightID || left.next != c.right {
			continue
		}
		left.id = c.result
		right.id = -1
		left.next = right.next
		if right.next >= 0 {
			symbols[right.next].prev = c.left
		}
		s.consider(t, left.prev, c.left)
		s.consider(t, c.left, left.next)
	}

	for i := int32(0); i >= 0; i = symbols[i].next {
		switch {
		case symbols[i].id >= 0:
			out = append(out, symbols[i].id)
		case t.unk >= 0:
			// Only a byte whose alphabet character is not in the vocabulary
			// gets here; real byte-level vocabularies have all 256.
			out = append(out, t.unk)
		}
	}
	return out
}

// decodeByteLevel turns a byte-level token's text back into the bytes it
// stands for. A character outside the byte alphabet is kept as its UTF-8
// encoding, which no well-formed vocabulary has.
func decodeByteLevel(text string, alphabet *[324]int16) []byte {
	out := make([]byte, 0, len(text))
	for _, r := range text {
		if r >= 0 && int(r) < len(alphabet) && alphabet[r] >= 0 {
			out = append(out, byte(alphabet[r]))
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
