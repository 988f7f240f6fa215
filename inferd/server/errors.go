package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/slmops/slmops/inferd/engine"
)

// The error classes of the serving side. Every error a handler meets is one
// of these (or an engine class), and statusOf maps them to answers in one
// place.
var (
	errOverloaded = errors.New("overloaded")
	errNotReady   = errors.New("model not ready")
	errNotFound   = errors.New("not found")
	errBadRequest = errors.New("invalid request")
	// errUnauthorized: the API needs a bearer token and the request
	// carried none or another (the token is never logged or echoed).
	errUnauthorized = errors.New("unauthorized")
)

// apiError is an OpenAI-style error answer.
type apiError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
	// retryAfter, in seconds, is sent as the Retry-After header.
	retryAfter int
}

func (e *apiError) Error() string { return e.Message }

// invalid is a 400 about one request parameter.
func invalid(param, format string, args ...any) error {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps an error to its answer.
func toAPIError(err error) *apiError {
	var ae *apiError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &tooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
	case errors.Is(err, errOverloaded):
		return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			Message: "inferd is serving as many requests as this model is configured for and its queue is full; retry after the time in Retry-After", retryAfter: 1}
	case errors.Is(err, errUnauthorized):
		return &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
			Message: "this inferd needs an API key: send it as the header Authorization: Bearer <key>"}
	case errors.Is(err, errNotReady):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "model_not_ready", Message: err.Error()}
	case errors.Is(err, errNotFound):
		return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Message: err.Error()}
	case errors.Is(err, errBadRequest), errors.Is(err, engine.ErrInvalidInput):
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "canceled", Message: "the request was canceled: the client went away or inferd is shutting down"}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error; see inferd's log"}
}

// writeError answers err as JSON: {"error": {...}}.
func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="inferd"`)
	}
	writeJSON(w, ae.Status, map[string]any{"error": ae})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
