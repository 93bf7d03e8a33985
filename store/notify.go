package store

// changes wakes readers waiting for new records: Changed hands out the
// current channel, and each commit that stored records closes it and starts
// a new one.
type changes struct {
	ch chan struct{}
}

// Changed returns a channel that is closed once a commit after this call
// stores records. Callers re-read what they follow, then call Changed again.
func (b *Bolt) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changes.ch == nil {
		b.changes.ch = make(chan struct{})
	}
	return b.changes.ch
}

// notifyLocked wakes the waiters of Changed. b.mu must be held.
func (b *Bolt) notifyLocked() {
	if b.changes.ch != nil {
		close(b.changes.ch)
		b.changes.ch = nil
	}
}
