package gather

import (
	"slices"
	"testing"
)

func TestReadyTakesWhatIsReadyUpToMax(t *testing.T) {
	ch := make(chan int, 10)
	for i := range 5 {
		ch <- i
	}
	got := Ready([]int{-1}, ch, 4)
	if want := []int{-1, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("Ready = %v, want %v", got, want)
	}
	got = Ready(got[:0], ch, 4)
	if want := []int{3, 4}; !slices.Equal(got, want) {
		t.Fatalf("second Ready = %v, want %v (what was left, without waiting)", got, want)
	}
}

func TestReadyStopsAtAClosedChannel(t *testing.T) {
	ch := make(chan int, 2)
	ch <- 7
	close(ch)
	if got := Ready(nil, ch, 10); !slices.Equal(got, []int{7}) {
		t.Fatalf("Ready = %v, want [7]", got)
	}
	if got := Ready(nil, ch, 10); len(got) != 0 {
		t.Fatalf("Ready of a drained closed channel = %v, want nothing", got)
	}
}

func TestReadyOfAFullBatchTakesNothing(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 1
	if got := Ready([]int{0, 0}, ch, 2); len(got) != 2 || len(ch) != 1 {
		t.Fatalf("Ready = %v with %d left in the channel, want the batch as it was and 1 left", got, len(ch))
	}
}
