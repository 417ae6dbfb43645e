package ota

import "errors"

// ErrMalformed refuses a message that breaks its rules; the error's text
// says which.
var ErrMalformed = errors.New("malformed update message")
