package main

import (
	"net"
	"strconv"
)

// defaultTurnProxyAddr is where turnsvc takes TURN relayed by the edge when both run in one
// process and TURN_PROXY_PROTOCOL_ADDR is not set: next to the internal services' ports.
const defaultTurnProxyAddr = "127.0.0.1:9104"

// wireEdge connects the edge to turnsvc and credsvc when one process runs them all and the
// operator left the connection to us: turnsvc listens for TURN with PROXY headers, the edge
// relays t.<DOMAIN> there, and credsvc hands out turns:t.<DOMAIN>:<HTTPS port>.
func (c *configs) wireEdge() {
	e := &c.gw.Edge
	if !e.Enabled() {
		return
	}
	if e.TurnUpstream == "" && c.turn.ProxyProtocolAddr == "" {
		e.TurnUpstream, c.turn.ProxyProtocolAddr = defaultTurnProxyAddr, defaultTurnProxyAddr
	}
	if c.cred.TurnsPort == 0 && e.TurnUpstream != "" {
		port := 443
		if _, p, err := net.SplitHostPort(e.HTTPSAddr); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 {
				port = n
			}
		}
		c.cred.TurnsPort = port
		if c.cred.TurnsHost == "" {
			c.cred.TurnsHost = e.TurnName()
		}
	}
}
