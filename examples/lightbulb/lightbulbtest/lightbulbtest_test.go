package lightbulbtest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb/lightbulbtest"
	"github.com/concursus-go/concursus/model"
)

// A bulb created, switched on and blown: the initial and terminal events
// carry the characteristics lightbulb.Define gives them, and an event
// given no payload has {}.
func ExampleFacts_Fact() {
	facts := lightbulbtest.NewFacts(time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC))
	for _, e := range []model.Event{
		facts.Fact("b1", 1, "created", 0, `{"wattage":60}`),
		facts.Fact("b1", 2, "switchedOn", time.Minute, ""),
		facts.Fact("b1", 3, "blown", 90*time.Second, ""),
	} {
		fmt.Println(e.EventID, e.VersionedName(), e.Characteristics, e.Timestamp.Format(time.TimeOnly), e.ProcessingTime.Format(time.TimeOnly), string(e.Payload))
	}
	// Output:
	// b1-1 created_0 initial 20:00:00 21:00:01 {"wattage":60}
	// b1-2 switchedOn_0 none 20:01:00 21:00:02 {}
	// b1-3 blown_0 terminal 20:01:30 21:00:03 {}
}

// A name the domain does not define, or a payload that does not decode,
// is a mistake in the test's data: Fact panics.
func TestFactPanicsOnAMistake(t *testing.T) {
	facts := lightbulbtest.NewFacts(time.Time{})
	for _, bad := range []struct{ name, payload string }{{"exploded", ""}, {"created", `{"wattage":"60"}`}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Fact(%q, %s) did not panic", bad.name, bad.payload)
				}
			}()
			facts.Fact("b1", 1, bad.name, 0, bad.payload)
		}()
	}
}
