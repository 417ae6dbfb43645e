package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Sizes of the TPM 2.0 wire format: every response starts with a 10-byte
// header (tag, total size, response code), and no TPM answers with more
// than a few kilobytes (MAX_RESPONSE_SIZE is 4096 on common parts).
const (
	headerSize      = 10
	maxResponseSize = 64 << 10
)

// opTimeout bounds one operation on a TPM when the caller's context has no
// deadline: crypto.Signer gives Sign no context, and a wedged simulator
// must not hang a TLS handshake for ever.
const opTimeout = 30 * time.Second

// socketTPM sends raw TPM 2.0 commands over a stream socket (swtpm's server
// port). A stream has no message boundaries, so the response is read by
// its header's size.
type socketTPM struct {
	conn net.Conn
}

func (s *socketTPM) Send(cmd []byte) ([]byte, error) {
	if _, err := s.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("%w: send: %v", ErrUnreachable, err)
	}
	return readResponse(s.conn)
}

func (s *socketTPM) Close() error { return s.conn.Close() }

// readResponse reads one TPM response from r, trusting none of it: the
// size in the header must cover the header and stay within
// maxResponseSize.
func readResponse(r io.Reader) ([]byte, error) {
	header := make([]byte, headerSize)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrResponse, err)
	}
	size := binary.BigEndian.Uint32(header[2:6])
	if size < headerSize || size > maxResponseSize {
		return nil, fmt.Errorf("%w: size %d, want %d to %d", ErrResponse, size, headerSize, maxResponseSize)
	}
	rsp := make([]byte, size)
	copy(rsp, header)
	if _, err := io.ReadFull(r, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrResponse, err)
	}
	return rsp, nil
}

// Response codes that ask the caller to send the same command again: the
// TPM was busy (self-test, or an ECC operation it runs in the background).
const (
	rcYielded = 0x908
	rcTesting = 0x90A
	rcRetry   = 0x922
)

// maxRetries bounds the resends of one command.
const maxRetries = 100

// retrying resends a command the TPM asks to have sent again, as
// tpm2-tss does.
type retrying struct {
	transport.TPMCloser
}

func (r retrying) Send(cmd []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		rsp, err := r.TPMCloser.Send(cmd)
		if err != nil || len(rsp) < headerSize {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case rcYielded, rcTesting, rcRetry:
			if attempt < maxRetries {
				time.Sleep(time.Millisecond)
				continue
			}
		}
		return rsp, nil
	}
}

// connect opens a connection to the TPM at a. On a simulator socket it
// also sends TPM2_Startup(CLEAR), which a started TPM refuses with
// TPM_RC_INITIALIZE; the kernel has started a device node's TPM at boot.
func connect(ctx context.Context, a Address) (transport.TPMCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if a.Kind == Device {
		t, err := linuxtpm.Open(a.Target)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, a, err)
		}
		return retrying{t}, nil
	}
	network := "tcp"
	if a.Kind == Unix {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, a.Target)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, a, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(opTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	t := retrying{&socketTPM{conn: conn}}
	_, err = tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t)
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		t.Close()
		return nil, fmt.Errorf("%w: %s: TPM2_Startup: %v (start swtpm with --flags not-need-init,startup-clear)", ErrUnreachable, a, err)
	}
	return t, nil
}
