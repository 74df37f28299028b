//go:build !race

package gwtest

const raceEnabled = false
