package device

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hallmark-iot/hallmark/internal/sealing"
)

// The encrypted programming channel of an inject chip has one transport
// key, of one scheme, chosen by the chip's design and fixed in its ROM, as
// on real secure MCUs: the station does not choose, it wraps to whatever
// the chip's bootloader offers. Two schemes exist:
//
//   - HPKE to a KEM key (sealing.Seal), the default, with X-Wing
//     (ML-KEM-768 + X25519): post-quantum, computable only in software.
//   - P-256 ECDH key wrap (sealing.WrapECDH): classical, but computable
//     inside a PKCS #11 token, so the device key need never leave an HSM in
//     the clear.
//
// One scheme per chip, rather than a chip offering both and the station
// picking, keeps the choice where it is recorded (the chip's state, the
// batch plan) and leaves no path by which a station silently falls back
// to the classical channel for a chip that offers the post-quantum one.

// Transport names the scheme of a chip's encrypted programming channel:
// TransportECDHP256, or for HPKE the name of the KEM (sealing.KEM).
type Transport string

// TransportECDHP256 is the P-256 ECDH key-wrap channel (sealing.WrapECDH).
const TransportECDHP256 Transport = "p256-ecdh"

// DefaultTransport is the channel of a chip whose Config names none: HPKE
// with the hybrid post-quantum KEM.
const DefaultTransport = Transport(sealing.DefaultKEM)

// ErrWrongTransport reports a request the chip's channel cannot serve: a
// key wrapped in the other scheme, or a transport key of the other kind.
var ErrWrongTransport = errors.New("the chip's programming channel uses another scheme")

// TransportNames lists the channel schemes, the default first.
func TransportNames() []string {
	return append(sealing.Names(), string(TransportECDHP256))
}

// ParseTransport reads a channel scheme: "p256-ecdh", or a KEM name that
// sealing.Lookup knows ("x-wing" names the hybrid).
func ParseTransport(s string) (Transport, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == string(TransportECDHP256) {
		return TransportECDHP256, nil
	}
	kem, err := sealing.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("%w: programming-channel transport %q (want %s)", ErrConfig, s, strings.Join(TransportNames(), ", "))
	}
	return Transport(kem), nil
}

// IsPostQuantum reports whether the channel stays confidential against a
// quantum attacker who recorded it: false for P-256 ECDH and for HPKE
// with X25519 alone.
func (t Transport) IsPostQuantum() bool {
	return t == Transport(sealing.MLKEM768X25519) || t == Transport(sealing.MLKEM768)
}

// makeLoader gives the bootloader its transport key of scheme t.
func makeLoader(t Transport, rng io.Reader) (*loaderPart, error) {
	if t == TransportECDHP256 {
		key, err := ecdh.P256().GenerateKey(rng)
		if err != nil {
			return nil, err
		}
		return &loaderPart{ECDHTransportKey: key.Bytes()}, nil
	}
	kem, err := sealing.Lookup(string(t))
	if err != nil {
		return nil, err
	}
	transport, err := sealing.GenerateKey(kem)
	if err != nil {
		return nil, err
	}
	raw, err := sealing.MarshalPrivateKey(transport)
	if err != nil {
		return nil, err
	}
	return &loaderPart{TransportKey: raw}, nil
}

// check accepts a bootloader with exactly one well-formed transport key.
func (l *loaderPart) check() error {
	switch {
	case l.TransportKey != nil && l.ECDHTransportKey != nil:
		return errors.New("bootloader holds two transport keys")
	case l.ECDHTransportKey != nil:
		if _, err := ecdh.P256().NewPrivateKey(l.ECDHTransportKey); err != nil {
			return fmt.Errorf("ECDH transport key: %w", err)
		}
	default:
		if _, err := sealing.ParsePrivateKey(l.TransportKey); err != nil {
			return fmt.Errorf("transport key: %w", err)
		}
	}
	return nil
}

// Transport returns the scheme of the chip's encrypted programming
// channel, or "" for a chip without one.
func (d *Device) Transport() Transport {
	l := d.st.Loader
	switch {
	case l == nil:
		return ""
	case l.ECDHTransportKey != nil:
		return TransportECDHP256
	}
	key, err := sealing.ParsePrivateKey(l.TransportKey)
	if err != nil {
		return "" // checkState refused such a state at load
	}
	return Transport(key.KEM())
}

// ECDHTransportKey is the public half of a P-256 ECDH channel, which the
// bootloader hands to the station.
func (d *Device) ECDHTransportKey() (*ecdh.PublicKey, error) {
	key, err := d.ecdhTransport()
	if err != nil {
		return nil, err
	}
	return key.PublicKey(), nil
}

func (d *Device) ecdhTransport() (*ecdh.PrivateKey, error) {
	if d.st.Loader == nil {
		return nil, ErrNoChannel
	}
	if d.st.Loader.ECDHTransportKey == nil {
		return nil, fmt.Errorf("%w: the channel is HPKE %s, not %s", ErrWrongTransport, d.Transport(), TransportECDHP256)
	}
	key, err := ecdh.P256().NewPrivateKey(d.st.Loader.ECDHTransportKey)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDH transport key: %v", ErrMalformedState, err)
	}
	return key, nil
}

func (d *Device) hpkeTransport() (*sealing.PrivateKey, error) {
	if d.st.Loader == nil {
		return nil, ErrNoChannel
	}
	if d.st.Loader.TransportKey == nil {
		return nil, fmt.Errorf("%w: the channel is %s, which has no HPKE transport key", ErrWrongTransport, TransportECDHP256)
	}
	key, err := sealing.ParsePrivateKey(d.st.Loader.TransportKey)
	if err != nil {
		return nil, fmt.Errorf("%w: transport key: %v", ErrMalformedState, err)
	}
	return key, nil
}

// Wrapper wraps a key for the chip's channel; it has the method set of
// keys.Wrapper, and the P-256 one also that of keys.ECDHTransport.
type Wrapper interface {
	Wrap(plaintext []byte) ([]byte, error)
}

// ChannelWrapper returns what a station hands to its key store to wrap a
// device key for this chip: the HPKE public key (*sealing.PublicKey), or
// for a P-256 ECDH channel a *sealing.ECDHTransportKey, which an HSM key
// store recognises (keys.ECDHTransport) and wraps to inside its token.
func (d *Device) ChannelWrapper() (Wrapper, error) {
	if d.Transport() == TransportECDHP256 {
		pub, err := d.ECDHTransportKey()
		if err != nil {
			return nil, err
		}
		return sealing.NewECDHTransportKey(pub)
	}
	return d.TransportKey()
}

// openInjected unwraps a key that arrived over the channel, in the one
// format the chip's channel takes. A key in the other format is refused
// as such, with no attempt to open it, so that neither side can fall back
// to a scheme the chip's design did not choose.
func (d *Device) openInjected(blob []byte) ([]byte, error) {
	if d.Transport() == TransportECDHP256 {
		if !sealing.IsECDHWrapped(blob) {
			return nil, fmt.Errorf("%w: %w: the key is not in the %s format this chip takes (is it sealed with HPKE?); wrap it to the chip's ECDH transport key", ErrWrongInjection, ErrWrongTransport, TransportECDHP256)
		}
		key, err := d.ecdhTransport()
		if err != nil {
			return nil, err
		}
		plain, err := sealing.UnwrapECDH(key, blob)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot unwrap the key: %v", ErrWrongInjection, err)
		}
		return plain, nil
	}
	if sealing.IsECDHWrapped(blob) {
		return nil, fmt.Errorf("%w: %w: the key is wrapped for a %s channel; this chip's channel is HPKE %s", ErrWrongInjection, ErrWrongTransport, TransportECDHP256, d.Transport())
	}
	key, err := d.hpkeTransport()
	if err != nil {
		return nil, err
	}
	plain, err := key.Unwrap(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot open the sealed key: %v", ErrWrongInjection, err)
	}
	return plain, nil
}
