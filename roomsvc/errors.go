package roomsvc

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"
)

// rejection is a reason a Join stream ends with an error. Its message reaches the gateway, so
// it stays human and never carries a PIN or a token; outcome labels metrics and stats.
type rejection struct {
	code    connect.Code
	msg     string
	outcome string
}

// Error makes rejection usable where an error is expected (the hub's return values).
func (r *rejection) Error() string { return r.msg }

// connectErr returns a fresh Connect error (connect errors carry mutable metadata, so one is
// never shared between streams).
func (r *rejection) connectErr() *connect.Error {
	return connect.NewError(r.code, errors.New(r.msg))
}

var (
	errBadPIN        = &rejection{connect.CodeInvalidArgument, "invalid PIN format: must be exactly 6 digits", "bad_pin"}
	errRoomFull      = &rejection{connect.CodeResourceExhausted, "room is full (maximum 2 members)", "room_full"}
	errBadLobby      = &rejection{connect.CodeInvalidArgument, "lobby name must be 1-64 printable characters", "bad_lobby"}
	errEmptyPeerID   = &rejection{connect.CodeInvalidArgument, "lobby peer id must not be empty", "bad_peer_id"}
	errLongField     = &rejection{connect.CodeInvalidArgument, "lobby peer id, name or user agent is too long", "bad_peer_id"}
	errPeerIDTaken   = &rejection{connect.CodeAlreadyExists, "peer id is already taken in this lobby", "peer_id_taken"}
	errNoRoom        = &rejection{connect.CodeInvalidArgument, "enter must name a PIN or a lobby", "bad_request"}
	errBadToken      = &rejection{connect.CodeNotFound, "resume token is not valid or has expired", "bad_token"}
	errSlotGone      = &rejection{connect.CodeNotFound, "the session to resume is gone (grace period over or room closed)", "slot_gone"}
	errNotJoined     = &rejection{connect.CodeFailedPrecondition, "first message must be enter or resume", "not_joined"}
	errTwice         = &rejection{connect.CodeFailedPrecondition, "already joined: one room per stream", "violation"}
	errEmptyMsg      = &rejection{connect.CodeInvalidArgument, "message has no enter, resume, signal or leave", "bad_request"}
	errResumedElse   = &rejection{connect.CodeFailedPrecondition, "session resumed elsewhere", "resumed_elsewhere"}
	errShuttingDown  = &rejection{connect.CodeUnavailable, "room service is shutting down", "unavailable"}
	errNoCredentials = &rejection{connect.CodeUnavailable, "Could not get connection details (TURN credentials): please try again shortly", "credentials_unavailable"}
	errCancelled     = &rejection{connect.CodeCanceled, "the gateway gave up on the session before it joined", "cancelled"}
	errBigSignal     = &rejection{connect.CodeInvalidArgument, "signal is too large (maximum 256 KiB)", "violation"}
)

var errBadSignalType = &rejection{connect.CodeInvalidArgument, "signal type must be 1-64 characters", "violation"}

// errLobbyFull's outcome labels a join refused because the lobby holds LOBBY_MAX_MEMBERS;
// lobbyFull builds the rejection with the lobby's name and the cap.
var errLobbyFull = &rejection{connect.CodeResourceExhausted, "lobby is full", "lobby_full"}

func lobbyFull(name string, max int) *rejection {
	return &rejection{errLobbyFull.code, fmt.Sprintf("lobby %s is full (maximum %d members)", name, max), errLobbyFull.outcome}
}

// errNoStreamControl: only withStreamControl mounts the stream handlers; without it a stream
// could not be ended from the hub's side.
var errNoStreamControl = errors.New("stream without stream control")

// errBadShardTag: a gateway's hello named its shard with something a token cannot carry.
var errBadShardTag = errors.New("the hello's shard tag must be at most 16 lowercase hex characters")
