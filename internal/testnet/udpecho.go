package testnet

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// UDPEchoPeer answers every UDP datagram with itself, standing for the remote side of a TURN
// relay. It listens on 127.0.0.2: tests run turnsvc on 127.0.0.1, which relays may reach on
// relay ports only (the own-address guard), so an echo peer there would never hear the relay.
func UDPEchoPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo(buf[:n], from)
		}
	}()
	return c
}

// RelayRoundTrip sends msg through relay to an echo peer and waits up to wait for it to come
// back (other datagrams are skipped).
func RelayRoundTrip(relay net.PacketConn, peer net.Addr, msg string, wait time.Duration) error {
	if _, err := relay.WriteTo([]byte(msg), peer); err != nil {
		return fmt.Errorf("write through relay: %w", err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(wait))
	defer relay.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, _, err := relay.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("read through relay: %w", err)
		}
		if string(buf[:n]) == msg {
			return nil
		}
	}
}
