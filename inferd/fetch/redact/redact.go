// Package redact keeps the secrets that URLs carry out of everything inferd
// says: signed URLs hold their signature in the query
// (X-Amz-Signature=..., sig=...), and a URL may carry user:password@.
// URL redacts one URL; Text redacts every URL in a message; Handler is the
// last pass over every log record, and Error wraps an error whose message
// may hold a URL (a *url.Error, an OCI client's error).
//
// What it owns: what counts as a secret in a URL. What it may not touch:
// anything but strings; it imports only the standard library, so that every
// package of inferd can use it.
package redact

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Query is what a redacted URL shows in place of its query.
const Query = "REDACTED"

// URL is raw with its query replaced by REDACTED and its userinfo and
// fragment dropped: https://host/path?REDACTED. A string that does not
// parse as a URL loses everything from its first '?' and up to its last '@'
// before the path.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return redactUnparsed(raw)
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	hadQuery := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery = "", false
	s := u.String()
	if hadQuery {
		s += "?" + Query
	}
	return s
}

func redactUnparsed(raw string) string {
	hadQuery := false
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		hadQuery = raw[i] == '?'
		raw = raw[:i]
	}
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		host, path, _ := strings.Cut(rest, "/")
		if i := strings.LastIndexByte(host, '@'); i >= 0 {
			host = host[i+1:]
		}
		raw = scheme + "://" + host
		if path != "" || strings.Contains(rest, "/") {
			raw += "/" + path
		}
	} else if i := strings.LastIndexByte(raw, '@'); i >= 0 {
		raw = raw[i+1:]
	}
	if hadQuery {
		raw += "?" + Query
	}
	return raw
}

// urlInText is a URL inside a message: a scheme, "://", and everything up
// to a space, a quote or a bracket (the way Go's errors quote URLs).
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>\x60]+`)

// Text is s with every URL in it redacted, as URL does.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(u string) string {
		// Punctuation that ends a sentence or a list is not the URL's.
		trimmed := strings.TrimRight(u, ".,;:)]")
		return URL(trimmed) + u[len(trimmed):]
	})
}

// Error is err with every URL of its message redacted. errors.Is still sees
// err's chain (a timeout, a cancellation, the fetch error classes), but
// errors.As does not reach the original: no *url.Error with the raw URL
// escapes through it. Nil stays nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	// err itself, not its chain: a *redacted wrapped in another error still
	// needs the wrapper's message redacted.
	if r, ok := err.(*redacted); ok { //nolint:errorlint // see above
		return r
	}
	return &redacted{msg: Text(err.Error()), orig: err}
}

type redacted struct {
	msg  string
	orig error
}

func (r *redacted) Error() string { return r.msg }

// Is answers for the original chain, so classification survives redaction.
func (r *redacted) Is(target error) bool { return errors.Is(r.orig, target) }

// Handler wraps h so that no log record carries a secret of a URL: the
// message and every string, error and Stringer attribute are redacted
// with Text. It is the last pass; the code that logs redacts first.
func Handler(h slog.Handler) slog.Handler { return &handler{h} }

type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = attr(a)
	}
	return &handler{h.next.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{h.next.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		group := v.Group()
		red := make([]any, len(group))
		for i, g := range group {
			red[i] = attr(g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Text(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, Text(x.String()))
		case []string:
			red := make([]string, len(x))
			for i, s := range x {
				red[i] = Text(s)
			}
			return slog.Any(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
