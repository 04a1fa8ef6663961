package eventlogtest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/concursus-go/concursus/model"
)

func TestDiffFields(t *testing.T) {
	want := NewEvent(model.Ref{Type: "t", ID: "i"}, 3, "w")
	same := want
	same.Timestamp = want.Timestamp.In(time.FixedZone("UTC+2", 2*3600))
	same.Payload = json.RawMessage(string(want.Payload))
	same.Late = true
	if d := DiffFields(&want, &same, "Late"); len(d) > 0 {
		t.Errorf("the same event in another location, Late ignored: %v", d)
	}
	if d := DiffFields(&want, &same); !slices.Equal(d, []string{"Late: got true, want false"}) {
		t.Errorf("Late not ignored: %v", d)
	}
	other := want
	other.Sequence = 4
	other.ProcessingTime = want.ProcessingTime.Add(time.Millisecond)
	other.Payload = json.RawMessage(`{}`)
	wantDiff := []string{
		"Sequence: got 4, want 3",
		"ProcessingTime: got " + other.ProcessingTime.String() + ", want " + want.ProcessingTime.String(),
		"Payload: got {}, want " + string(want.Payload),
	}
	if d := DiffFields(&want, &other); !slices.Equal(d, wantDiff) {
		t.Errorf("DiffFields =\n%q\nwant\n%q", d, wantDiff)
	}
}
