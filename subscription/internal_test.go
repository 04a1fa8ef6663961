package subscription

import (
	"strings"
	"testing"
)

func TestHeaderValueFitsOneLine(t *testing.T) {
	if got := headerValue("a\r\nb"); got != "a  b" {
		t.Errorf("headerValue kept line breaks: %q", got)
	}
	long := strings.Repeat("é", maxHeaderError) // 2 bytes each
	got := headerValue(long)
	if len(got) > maxHeaderError+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Errorf("headerValue of %d bytes: %d bytes", len(long), len(got))
	}
	if strings.ContainsRune(strings.TrimSuffix(got, "…"), '\uFFFD') {
		t.Error("headerValue cut inside a UTF-8 sequence")
	}
}
