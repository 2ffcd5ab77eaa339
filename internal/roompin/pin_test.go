package roompin

import "testing"

func TestValid(t *testing.T) {
	for p, want := range map[string]bool{
		"123456": true, "000000": true, "999999": true,
		"": false, "12345": false, "1234567": false, "12345a": false, " 12345": false,
		"１２３４５６": false, "١٢٣٤٥٦": false, // other scripts' digits are not ASCII
		"12-456": false, "12345\n": false,
	} {
		if got := Valid(p); got != want {
			t.Errorf("Valid(%q) = %v, want %v", p, got, want)
		}
	}
}
