package memory_test

import (
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/commandlog/commandlogtest"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/storage/memory"
)

func TestEventLog(t *testing.T) {
	eventlogtest.Run(t, func(*testing.T) eventlog.Log { return memory.NewEventLog() },
		eventlogtest.WithLargeHistory(20000))
}

func TestOutbox(t *testing.T) {
	eventlogtest.RunOutbox(t, func(*testing.T) (eventlog.Log, eventlog.Outbox) {
		l := memory.NewEventLog()
		return l, l
	})
}

func TestCommandLog(t *testing.T) {
	commandlogtest.Run(t, func(*testing.T) commandlog.Log { return memory.NewCommandLog() })
}
