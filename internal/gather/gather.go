// Package gather collects what a channel already holds into a batch without
// waiting for more: the group-commit step of the executor's flushers and
// filter feeder and of the publisher's core-NATS acknowledgements. It has
// its own home because three loops in two packages took it, each with a
// copy of the same labelled select.
package gather

// Ready appends to b the values ch holds ready, without blocking, until b
// has max values, ch is empty, or ch is closed (a closed channel is left
// for the caller's range loop to see). It returns the extended b.
func Ready[T any](b []T, ch <-chan T, max int) []T {
	for len(b) < max {
		select {
		case v, ok := <-ch:
			if !ok {
				return b
			}
			b = append(b, v)
		default:
			return b
		}
	}
	return b
}
