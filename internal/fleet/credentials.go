package fleet

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The credentials file keeps what onboarding gave each fleet device that
// the seed cannot regenerate: its certificate chain. Keys are derived from
// the seed again, so the file holds public data only. Records are
// appended as onboardings finish, in no particular order:
//
//	"hallmark fleet credentials v1\n"
//	record: uvarint(index) uvarint(n) n × (uvarint(len) DER certificate)
//
// An ECDSA P-256 chain (leaf and issuing CA) is about 1.1 KB, so 100,000
// devices take about 110 MB, read back as a stream.
const credentialsMagic = "hallmark fleet credentials v1\n"

// Limits on a credentials record: a chain is a leaf and its CAs.
const (
	maxChainLen = 8
	maxCertLen  = 64 << 10
)

// ErrCredentialsFormat marks a credentials file that is not one.
var ErrCredentialsFormat = errors.New("malformed fleet credentials file")

// CredentialWriter appends devices' chains to a credentials file. It is
// safe for concurrent use.
type CredentialWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	n   int64
	err error
}

// NewCredentialWriter starts a credentials file on w.
func NewCredentialWriter(w io.Writer) (*CredentialWriter, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(credentialsMagic); err != nil {
		return nil, fmt.Errorf("fleet credentials: %w", err)
	}
	return &CredentialWriter{w: bw}, nil
}

// Add records device index's chain (DER, leaf first).
func (c *CredentialWriter) Add(index uint64, chain [][]byte) error {
	if len(chain) == 0 || len(chain) > maxChainLen {
		return fmt.Errorf("fleet credentials: device %d: chain of %d certificates, want 1 to %d", index, len(chain), maxChainLen)
	}
	rec := binary.AppendUvarint(nil, index)
	rec = binary.AppendUvarint(rec, uint64(len(chain)))
	for _, der := range chain {
		if len(der) == 0 || len(der) > maxCertLen {
			return fmt.Errorf("fleet credentials: device %d: certificate of %d bytes", index, len(der))
		}
		rec = binary.AppendUvarint(rec, uint64(len(der)))
		rec = append(rec, der...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if _, err := c.w.Write(rec); err != nil {
		c.err = fmt.Errorf("fleet credentials: %w", err)
		return c.err
	}
	c.n++
	return nil
}

// Count is the number of records added.
func (c *CredentialWriter) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Flush writes what is buffered; the file is complete once it returns nil.
func (c *CredentialWriter) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if err := c.w.Flush(); err != nil {
		c.err = fmt.Errorf("fleet credentials: %w", err)
	}
	return c.err
}

// CredentialReader reads a credentials file record by record.
type CredentialReader struct {
	r *bufio.Reader
}

// NewCredentialReader checks the file's header.
func NewCredentialReader(r io.Reader) (*CredentialReader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic := make([]byte, len(credentialsMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(credentialsMagic)) {
		return nil, fmt.Errorf("%w: no %q header", ErrCredentialsFormat, credentialsMagic[:len(credentialsMagic)-1])
	}
	return &CredentialReader{r: br}, nil
}

// Next returns the next device's index and chain; io.EOF after the last.
func (c *CredentialReader) Next() (uint64, [][]byte, error) {
	index, err := binary.ReadUvarint(c.r)
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: index: %v", ErrCredentialsFormat, err)
	}
	n, err := binary.ReadUvarint(c.r)
	if err != nil || n == 0 || n > maxChainLen {
		return 0, nil, fmt.Errorf("%w: device %d: chain length", ErrCredentialsFormat, index)
	}
	chain := make([][]byte, 0, n)
	for range n {
		size, err := binary.ReadUvarint(c.r)
		if err != nil || size == 0 || size > maxCertLen {
			return 0, nil, fmt.Errorf("%w: device %d: certificate length", ErrCredentialsFormat, index)
		}
		der := make([]byte, size)
		if _, err := io.ReadFull(c.r, der); err != nil {
			return 0, nil, fmt.Errorf("%w: device %d: certificate truncated", ErrCredentialsFormat, index)
		}
		chain = append(chain, der)
	}
	return index, chain, nil
}
