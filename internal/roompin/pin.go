// Package roompin holds the one rule about room PINs that the gateway (to answer a browser at once)
// and roomsvc (which owns the rooms) must agree on.
package roompin

// Valid reports whether p is a room PIN: exactly 6 ASCII digits.
func Valid(p string) bool {
	if len(p) != 6 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}
