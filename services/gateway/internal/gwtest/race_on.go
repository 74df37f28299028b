//go:build race

package gwtest

// raceEnabled: this test binary runs with the race detector, and so do
// the gateway processes it starts (their packages are then already built).
const raceEnabled = true
