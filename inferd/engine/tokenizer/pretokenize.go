package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits text into the words that byte-level BPE merges within:
// no merge ever crosses a word boundary. It calls emit with the byte range of
// each word, in order; the ranges cover the text without gaps.
type preTokenizer func(text string, emit func(start, end int))

// class is the character class the split patterns test: \p{L}, \p{N}, \s, or
// anything else. Bytes that are not valid UTF-8 are "other" so that they stay
// in the text (byte-level BPE encodes every byte) instead of being dropped.
type class uint8

const (
	classOther class = iota
	classLetter
	classNumber
	classSpace
	// classEnd stands for "past the end of the text", which the patterns
	// treat as neither whitespace nor anything else.
	classEnd
)

// asciiClass avoids the unicode tables for the common case.
var asciiClass = func() (c [utf8.RuneSelf]class) {
	for r := range rune(utf8.RuneSelf) {
		c[r] = slowClass(r)
	}
	return c
}()

func slowClass(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// at decodes the character at byte offset i: its rune, byte length and class.
// An invalid byte is a one-byte character of class other.
func at(text string, i int) (rune, int, class) {
	if i >= len(text) {
		return 0, 0, classEnd
	}
	if b := text[i]; b < utf8.RuneSelf {
		return rune(b), 1, asciiClass[b]
	}
	r, n := utf8.DecodeRuneInString(text[i:])
	if r == utf8.RuneError && n == 1 {
		return r, 1, classOther
	}
	return r, n, slowClass(r)
}

// run returns the end of the run of characters of class c starting at i.
func run(text string, i int, c class) int {
	for {
		_, n, ci := at(text, i)
		if ci != c {
			return i
		}
		i += n
	}
}

// contraction returns the length of an English contraction suffix ('s 't 're
// 've 'm 'll 'd) at the start of s, or 0. foldCase accepts upper case too, as
// the (?i:...) group of the qwen2 pattern does.
func contraction(s string, foldCase bool) int {
	if len(s) < 2 || s[0] != '\'' {
		return 0
	}
	lower := func(b byte) byte {
		if foldCase && 'A' <= b && b <= 'Z' {
			return b + 'a' - 'A'
		}
		return b
	}
	switch lower(s[1]) {
	case 's', 't', 'm', 'd':
		return 2
	}
	if len(s) < 3 {
		return 0
	}
	switch string([]byte{lower(s[1]), lower(s[2])}) {
	case "re", "ve", "ll":
		return 3
	}
	return 0
}

// spaceRun handles the pattern's tail \s+(?!\S)|\s+ for the whitespace run
// [i, end): a run followed by a non-space character gives up its last
// character, which then leads the next word (" world" rather than "world"),
// unless that would leave the run empty.
func spaceRun(text string, i, end int) int {
	if end == len(text) {
		return end
	}
	_, last := utf8.DecodeLastRuneInString(text[i:end])
	if end-last > i {
		return end - last
	}
	return end
}

// splitGPT2 is the GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// written as a scanner because Go's regexp has no lookahead.
func splitGPT2(text string, emit func(start, end int)) {
	for i := 0; i < len(text); {
		if n := contraction(text[i:], false); n > 0 {
			emit(i, i+n)
			i += n
			continue
		}
		r, n, c := at(text, i)
		// " ?X+": a single ASCII space may lead a run of letters, numbers or
		// other symbols.
		j, cj := i, c
		if r == ' ' {
			_, _, cj = at(text, i+n)
			if cj != classSpace && cj != classEnd {
				j = i + n
			}
		}
		if cj == classLetter || cj == classNumber || cj == classOther {
			end := run(text, j, cj)
			emit(i, end)
			i = end
			continue
		}
		end := spaceRun(text, i, run(text, i, classSpace))
		emit(i, end)
		i = end
	}
}

// isCRLF reports whether the byte is \r or \n, which the qwen2 pattern keeps
// apart from other whitespace.
func isCRLF(b byte) bool { return b == '\r' || b == '\n' }

// splitQwen2 is the qwen2 pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Unlike GPT-2's it lets any one non-letter, non-digit character other than a
// line break lead a word ("(word", "\tword"), splits numbers into single
// digits, and keeps line breaks together with the whitespace before them.
func splitQwen2(text string, emit func(start, end int)) { splitDigitGroups(text, 1, emit) }

// splitLlama3 is Llama 3's pattern (llama.cpp's llama-bpe and its aliases),
// the qwen2 pattern with \p{N}{1,3} for \p{N}: numbers go in threes from the
// left.
func splitLlama3(text string, emit func(start, end int)) { splitDigitGroups(text, 3, emit) }

// splitDigitGroups is the qwen2 and Llama 3 pattern with numbers split into
// runs of at most digits characters.
func splitDigitGroups(text string, digits int, emit func(start, end int)) {
	for i := 0; i < len(text); {
		if n := contraction(text[i:], true); n > 0 {
			emit(i, i+n)
			i += n
			continue
		}
		r, n, c := at(text, i)
		// [^\r\n\p{L}\p{N}]?\p{L}+
		if c == classLetter {
			end := run(text, i, classLetter)
			emit(i, end)
			i = end
			continue
		}
		if c != classNumber && !(r == '\r' || r == '\n') {
			if _, _, cn := at(text, i+n); cn == classLetter {
				end := run(text, i+n, classLetter)
				emit(i, end)
				i = end
				continue
			}
		}
		// \p{N}{1,digits}
		if c == classNumber {
			end := i + n
			for k := 1; k < digits; k++ {
				_, m, cm := at(text, end)
				if cm != classNumber {
					break
				}
				end += m
			}
			emit(i, end)
			i = end
			continue
		}
		// " ?[^\s\p{L}\p{N}]+[\r\n]*"
		j, cj := i, c
		if r == ' ' {
			if _, _, cn := at(text, i+n); cn == classOther {
				j, cj = i+n, cn
			}
		}
		if cj == classOther {
			end := run(text, j, classOther)
			for end < len(text) && isCRLF(text[end]) {
				end++
			}
			emit(i, end)
			i = end
			continue
		}
		// \s*[\r\n]+ reaches the last line break of the whitespace run;
		// otherwise \s+(?!\S)|\s+ as in GPT-2.
		runEnd := run(text, i, classSpace)
		end := -1
		for k := runEnd - 1; k >= i; k-- {
			if isCRLF(text[k]) {
				end = k + 1
				break
			}
		}
		if end < 0 {
			end = spaceRun(text, i, runEnd)
		}
		emit(i, end)
		i = end
	}
}

// splitDefault is llama.cpp's pre-tokenizer for a byte-level BPE vocabulary
// that names none or "default" (gpt-neox files, for one): four patterns
// applied one after another, each splitting every piece the one before left
// into its matches and the runs between them,
//
//	[\p{P}\$\+<=>\^~\|]+
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
//	\p{N}+
//	[0-9][0-9][0-9]
//
// So punctuation never joins a word (and an apostrophe is cut off before
// the contraction rule sees it), a space before a number stands alone, and
// ASCII digits go in threes from the left. Each piece is split as a text of
// its own: its end counts as the end of the text.
func splitDefault(text string, emit func(start, end int)) {
	splitRuns(text, 0, len(text), isDefaultPunct, func(lo, hi int) {
		splitGPT2(text[lo:hi], func(start, end int) {
			splitRuns(text, lo+start, lo+end, isNumber, func(lo, hi int) {
				splitDigitTriples(text, lo, hi, emit)
			})
		})
	})
}

// splitSmolLM is llama.cpp's smollm pre-tokenizer (starcoder's and
// refact's too): \p{N} (every digit a piece of its own), then the GPT-2
// pattern over the runs between digits.
func splitSmolLM(text string, emit func(start, end int)) {
	splitRuns(text, 0, len(text), isNumber, func(lo, hi int) {
		if _, _, c := at(text, lo); c == classNumber {
			for i := lo; i < hi; {
				_, n, _ := at(text, i)
				emit(i, i+n)
				i += n
			}
			return
		}
		splitGPT2(text[lo:hi], func(start, end int) { emit(lo+start, lo+end) })
	})
}

// defaultPunct is the ASCII part of the default pattern's first class:
// \p{P} in llama.cpp's ASCII table plus $+<=>^~| (every ASCII punctuation
// character or symbol but the backtick).
const defaultPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_{|}~"

func isDefaultPunct(r rune, _ class) bool {
	if r < utf8.RuneSelf {
		return strings.IndexByte(defaultPunct, byte(r)) >= 0
	}
	return unicode.IsPunct(r)
}

func isNumber(_ rune, c class) bool { return c == classNumber }

// splitRuns emits [lo, hi) as maximal runs of characters that do and do
// not satisfy in, alternately.
func splitRuns(text string, lo, hi int, in func(rune, class) bool, emit func(start, end int)) {
	start, inside := lo, false
	for i := lo; i < hi; {
		r, n, c := at(text, i)
		if got := in(r, c); got != inside || i == lo {
			if i > start {
				emit(start, i)
			}
			start, inside = i, got
		}
		i += n
	}
	if hi > start {
		emit(start, hi)
	}
}

// splitDigitTriples emits [lo, hi) with every leftmost three ASCII digits in
// a row as a piece of its own, the way a regexp iterator finds
// [0-9][0-9][0-9]: "12345" is "123" and "45".
func splitDigitTriples(text string, lo, hi int, emit func(start, end int)) {
	start, digits := lo, 0
	for i := lo; i < hi; i++ {
		if text[i] < '0' || text[i] > '9' {
			digits = 0
			continue
		}
		if digits++; digits == 3 {
			if i-2 > start {
				emit(start, i-2)
			}
			emit(i-2, i+1)
			start, digits = i+1, 0
		}
	}
	if hi > start {
		emit(start, hi)
	}
}
