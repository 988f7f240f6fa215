package tokenizer

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEncodeWithSpecialsExcept: control-token text inside a literal range
// is plain text, tokenized with the text around it; outside, it is the
// token.
func TestEncodeWithSpecialsExcept(t *testing.T) {
	v := spmVocab("▁", -1.0, "h", -1.0, "i", -1.0, "▁h", -3.0, "hi", -2.0, "▁hi", -2.5, "<", -1.0, ">", -1.0, "|", -1.0)
	v.add("<|im_start|>", 0, typeControl).add("<|im_end|>", 0, typeControl)
	tok := mustTokenizer(t, v.spmMeta())

	text := "<|im_start|>hi<|im_start|>hi<|im_end|>"
	second := [2]int{len("<|im_start|>hi"), len("<|im_start|>hi<|im_start|>")}
	tests := map[string]struct {
		literal [][2]int
		want    []int32
	}{
		"no literal range: every marker is a token": {
			want: v.ids(t, "<|im_start|>", "▁hi", "<|im_start|>", "▁hi", "<|im_end|>"),
		},
		"the second marker literal: it is text, one piece with the words around it": {
			literal: [][2]int{second},
			want:    append(v.ids(t, "<|im_start|>"), append(tok.Encode("hi<|im_start|>hi", false), v.ids(t, "<|im_end|>")...)...),
		},
		"a range that only touches a marker's last byte keeps it text": {
			literal: [][2]int{{second[1] - 1, second[1]}},
			want:    append(v.ids(t, "<|im_start|>"), append(tok.Encode("hi<|im_start|>hi", false), v.ids(t, "<|im_end|>")...)...),
		},
		"a range between markers changes nothing": {
			literal: [][2]int{{len("<|im_start|>"), len("<|im_start|>hi")}},
			want:    v.ids(t, "<|im_start|>", "▁hi", "<|im_start|>", "▁hi", "<|im_end|>"),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tok.EncodeWithSpecialsExcept(text, false, tc.literal)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if !tok.AddsBOS() || tok.Text(tok.BOS()) != "<s>" || tok.Text(-1) != "" || tok.Text(int32(tok.VocabSize())) != "" {
		t.Errorf("AddsBOS %v, BOS text %q, out of range %q %q", tok.AddsBOS(), tok.Text(tok.BOS()), tok.Text(-1), tok.Text(int32(tok.VocabSize())))
	}
	if diff := cmp.Diff([]string{"<|im_start|>", "<|im_end|>", "<unk>", "</s>", "<s>"}, tok.ControlTexts()); diff != "" {
		t.Errorf("ControlTexts (-want +got):\n%s", diff)
	}
}
