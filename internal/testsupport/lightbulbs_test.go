package testsupport_test

import (
	"strings"
	"testing"

	"github.com/concursus-go/concursus/internal/testsupport"
)

// The workload creates its bulbs, screws them in, then switches each on
// and off in turn; a switch that was not accepted does not flip its bulb.
func TestLightbulbs(t *testing.T) {
	w := testsupport.NewLightbulbs(3, 2)
	var got []string
	for step := range 9 {
		c := w.Next()
		got = append(got, c.CommandID+" "+c.Command+" "+string(c.Args))
		if c.AggregateID != c.CommandID[:len("w3-b0")] {
			t.Errorf("step %d: aggregate %q, command id %q", step, c.AggregateID, c.CommandID)
		}
		if step != 6 { // the second switch of w3-b0 is given up on
			w.Accepted()
		}
	}
	want := []string{
		`w3-b0-0 create {"wattage":60}`,
		`w3-b1-1 create {"wattage":60}`,
		`w3-b0-2 screwIn {"location":"lab"}`,
		`w3-b1-3 screwIn {"location":"lab"}`,
		`w3-b0-4 switchOn `,
		`w3-b1-5 switchOn `,
		`w3-b0-6 switchOff `,
		`w3-b1-7 switchOff `,
		`w3-b0-8 switchOff `,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
