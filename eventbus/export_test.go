package eventbus

// MaintenanceRounds is how many maintenance rounds p has completed, for
// tests that must let several pass.
func MaintenanceRounds(p *Publisher) int64 { return p.rounds.Load() }
