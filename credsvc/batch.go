package credsvc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	credv1 "github.com/tuturu/tuturu/gen/tuturu/cred/v1"
)

// maxBatchItems bounds the requests of one IssueBatch or RevokeBatch, so that one call cannot
// hold a handler (or one revocation transaction) for long.
const maxBatchItems = 1024

// checkBatch refuses an oversized batch as a whole.
func checkBatch(n int) error {
	if n > maxBatchItems {
		return connect.NewError(connect.CodeInvalidArgument,
			fmt.Errorf("batch has %d requests; at most %d are allowed per call: split it", n, maxBatchItems))
	}
	return nil
}

// itemError is the result of one batch item that failed with err, a Connect error.
func itemError(err error) *credv1.ItemError {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return &credv1.ItemError{Code: uint32(ce.Code()), Message: ce.Message()}
	}
	return &credv1.ItemError{Code: uint32(connect.CodeUnknown), Message: err.Error()}
}

// IssueBatch issues credentials for several participants, each item as Issue would.
func (s *Service) IssueBatch(ctx context.Context, req *connect.Request[credv1.IssueBatchRequest]) (*connect.Response[credv1.IssueBatchResponse], error) {
	items := req.Msg.GetRequests()
	if err := checkBatch(len(items)); err != nil {
		return nil, err
	}
	now := s.cfg.now()
	results := make([]*credv1.IssueResult, len(items))
	issued := 0
	for i, item := range items {
		res, err := s.issue(item, now)
		if err != nil {
			results[i] = &credv1.IssueResult{Result: &credv1.IssueResult_Error{Error: itemError(err)}}
			continue
		}
		results[i] = &credv1.IssueResult{Result: &credv1.IssueResult_Credentials{Credentials: res}}
		issued++
	}
	s.metrics.issued.Add(ctx, int64(issued))
	// Counts only: a batch's participant ids would make one span attribute per member.
	trace.SpanFromContext(ctx).SetAttributes(
		attribute.Int("tuturu.batch.items", len(items)),
		attribute.Int("tuturu.batch.refused", len(items)-issued))
	return connect.NewResponse(&credv1.IssueBatchResponse{Results: results}), nil
}

// RevokeBatch stores the well-formed items, each as Revoke would, in one transaction; a
// malformed item gets its own error and does not hold back the others. When the write fails
// the whole call fails, so that a caller holding a response may forget every item.
func (s *Service) RevokeBatch(ctx context.Context, req *connect.Request[credv1.RevokeBatchRequest]) (*connect.Response[credv1.RevokeBatchResponse], error) {
	items := req.Msg.GetRequests()
	if err := checkBatch(len(items)); err != nil {
		return nil, err
	}
	now := s.cfg.now()
	results := make([]*credv1.RevokeResult, len(items))
	puts := make([]*revocationPut, 0, len(items))
	at := make([]int, 0, len(items)) // the item index of each put
	for i, item := range items {
		p, err := s.revocation(item, now)
		if err != nil {
			results[i] = &credv1.RevokeResult{Result: &credv1.RevokeResult_Error{Error: itemError(err)}}
			continue
		}
		puts = append(puts, p)
		at = append(at, i)
	}
	trace.SpanFromContext(ctx).SetAttributes(
		attribute.Int("tuturu.batch.items", len(items)),
		attribute.Int("tuturu.batch.refused", len(items)-len(puts)))
	if err := s.storeRevocations(ctx, puts); err != nil {
		return nil, err
	}
	for j, p := range puts {
		results[at[j]] = &credv1.RevokeResult{Result: &credv1.RevokeResult_Revocation{Revocation: p.pb}}
	}
	return connect.NewResponse(&credv1.RevokeBatchResponse{Results: results}), nil
}
