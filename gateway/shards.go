package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	roomv1 "github.com/tuturu/tuturu/gen/tuturu/room/v1"
	"github.com/tuturu/tuturu/internal/platform"
)

// Rooms are sharded over the roomsvc processes in ROOMSVC_URL by rendezvous (highest random
// weight) hashing: a room goes to the shard whose name, hashed with the room's kind and name
// (PIN or lobby name), weighs most. Every gateway given the same names, in any order, picks
// the same shard with no coordination, and removing a shard moves only the rooms it held.
// A resume goes where its token's clear prefix (the shard's tag) says.

// shard is one roomsvc process of the set.
type shard struct {
	// name is the host:port of its URL: what every gateway hashes, so every gateway must
	// list the same ones.
	name string
	url  string
	// tag names the shard in its resume tokens: hex of SHA-256(name), short.
	tag  string
	seed uint64
	link *roomLink // nil until the gateway makes its link
}

// shardTagLen is the length of a tag in hex characters: 32 bits tell a handful of shards
// apart, and parseShards refuses the (unlikely) set whose tags collide.
const shardTagLen = 8

// parseShards reads ROOMSVC_URL: one base URL, or a comma-separated list of them.
func parseShards(list string) ([]*shard, error) {
	urls := platform.SplitList(list)
	if len(urls) == 0 {
		return nil, fmt.Errorf("ROOMSVC_URL is empty: give the room service's base URL, or a comma-separated list of its shards")
	}
	shards := make([]*shard, 0, len(urls))
	names := map[string]bool{}
	tags := map[string]string{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("ROOMSVC_URL: %q is not a base URL such as http://roomsvc:9101", raw)
		}
		if names[u.Host] {
			return nil, fmt.Errorf("ROOMSVC_URL: %s is listed twice", u.Host)
		}
		names[u.Host] = true
		sum := sha256.Sum256([]byte(u.Host))
		tag := hex.EncodeToString(sum[:shardTagLen/2])
		if other, dup := tags[tag]; dup {
			return nil, fmt.Errorf("ROOMSVC_URL: %s and %s hash to the same shard tag: rename one", other, u.Host)
		}
		tags[tag] = u.Host
		shards = append(shards, &shard{name: u.Host, url: strings.TrimSuffix(raw, "/"), tag: tag, seed: hash64(0, u.Host)})
	}
	return shards, nil
}

// roomShard is the shard of a room, by rendezvous hashing of its kind and name.
func roomShard(shards []*shard, kind roomv1.RoomKind, name string) *shard {
	if len(shards) == 1 {
		return shards[0]
	}
	key := hash64(uint64(kind), name)
	var best *shard
	var bestW uint64
	for _, s := range shards {
		w := mix64(s.seed ^ key)
		// Ties (never seen in practice) go to the smaller name, the same on every gateway.
		if best == nil || w > bestW || (w == bestW && s.name < best.name) {
			best, bestW = s, w
		}
	}
	return best
}

// tokenShard is the shard a resume token names in its clear prefix ("<tag>.v2...."). A token
// without a known tag goes to the first shard, which refuses it as any bad token.
func tokenShard(shards []*shard, token string) *shard {
	if dot := strings.IndexByte(token, '.'); dot == shardTagLen {
		for _, s := range shards {
			if s.tag == token[:dot] {
				return s
			}
		}
	}
	return shards[0]
}

// requestShard is the shard a session's first request (enter or resume) goes to.
func requestShard(shards []*shard, first *roomv1.MemberRequest) *shard {
	if r := first.GetResume(); r != nil {
		return tokenShard(shards, r.GetResumeToken())
	}
	e := first.GetEnter()
	if lobby, ok := e.GetRoom().(*roomv1.Enter_Lobby); ok {
		return roomShard(shards, roomv1.RoomKind_ROOM_KIND_LOBBY, lobby.Lobby)
	}
	return roomShard(shards, roomv1.RoomKind_ROOM_KIND_PIN, e.GetPin())
}

// hash64 is FNV-1a over a small number and a string, finished by mix64.
func hash64(n uint64, s string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < 8; i++ {
		h = (h ^ (n & 0xff)) * prime
		n >>= 8
	}
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * prime
	}
	return mix64(h)
}

// mix64 is SplitMix64's finalizer: every input bit moves about half the output bits, so the
// weights of one key on different shards are independent.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
