package station

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hallmark-iot/hallmark/internal/device"
	"github.com/hallmark-iot/hallmark/internal/identity"
	"github.com/hallmark-iot/hallmark/internal/keys"
	"github.com/hallmark-iot/hallmark/internal/sealing"
	"github.com/hallmark-iot/hallmark/internal/sigalg"
)

// runDevices hands the batch's unrecorded devices to the workers. It stops
// at the first error that is not one device's rejection, since that means
// the station itself is broken (disk, key store, journal).
func (st *station) runDevices(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	seqs := make(chan int)
	var wg sync.WaitGroup
	for range st.cfg.Workers {
		wg.Go(func() {
			for seq := range seqs {
				if err := st.provision(ctx, seq); err != nil {
					cancel(err)
				}
			}
		})
	}
	for seq := 0; seq < st.info.Count; seq++ {
		if st.journal.done(seq) {
			continue
		}
		select {
		case seqs <- seq:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(seqs)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("station: %w", err)
	}
	return nil
}

// rejection is a device the station refuses; the batch goes on without it.
type rejection struct{ err error }

func (r rejection) Error() string { return r.err.Error() }
func (r rejection) Unwrap() error { return r.err }

// provision takes device seq from bare silicon to a journal entry.
func (st *station) provision(ctx context.Context, seq int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := filepath.Join(st.cfg.Dir, devicesDir, deviceFile(seq))
	rec, err := st.enrol(ctx, seq, path)
	var rej rejection
	if errors.As(err, &rej) {
		st.cfg.Log.Warn("device rejected", "seq", seq, "reason", rej.Error())
		if err := os.Rename(path, path+".rejected"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return st.journal.append(entry{Seq: seq, Rejected: rej.Error()})
	}
	if err != nil {
		return fmt.Errorf("device %d: %w", seq, err)
	}
	return st.journal.append(entry{Seq: seq, Device: rec})
}

// enrol makes (or, after a kill, reloads) device seq, boots its IEF, checks
// its proof, programs the application, locks the chip last (a locked
// bootloader takes no key, and a locked chip can no longer be debugged)
// and saves its state. The state is saved before the journal entry
// is written, so a device the journal counts always exists on disk.
func (st *station) enrol(ctx context.Context, seq int, path string) (*Record, error) {
	kind := st.info.Plan.KindOf(seq)
	dev, err := device.Load(path, st.cfg.TRNG(seq))
	if errors.Is(err, os.ErrNotExist) {
		dev, err = device.New(device.Config{
			Class: kind.Class, Algorithm: kind.Algorithm, RootKeyHashes: st.cfg.RootKeyHashes,
			EncryptedChannel: kind.Channel, Transport: kind.Transport, ClassKey: st.cfg.ClassKey, Rand: st.cfg.TRNG(seq), TPM: st.cfg.TPM,
		})
	}
	if err != nil {
		return nil, err
	}
	if dev.NeedsKey() {
		if err := st.inject(ctx, dev); err != nil {
			return nil, err
		}
	}
	if err := dev.Program(st.cfg.IEF); err != nil {
		return nil, programError(err)
	}
	if err := dev.Boot(); err != nil {
		return nil, rejection{err}
	}
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	enr, err := dev.Enrol(nonce)
	if err != nil {
		return nil, rejection{err}
	}
	if err := checkEnrolment(enr, nonce, kind); err != nil {
		return nil, rejection{err}
	}
	if err := st.claim(enr.Identity, seq); err != nil {
		return nil, rejection{err}
	}
	if len(st.cfg.App) > 0 {
		if err := dev.Program(st.cfg.App); err != nil {
			return nil, programError(err)
		}
		if err := dev.Boot(); err != nil {
			return nil, rejection{fmt.Errorf("application firmware: %w", err)}
		}
	}
	if !st.info.LeaveOpen {
		if err := dev.Lock(); err != nil {
			return nil, err
		}
	}
	if err := dev.Save(path); err != nil {
		return nil, err
	}
	return &Record{
		Identity: enr.Identity, Algorithm: enr.Algorithm, PublicKey: enr.PublicKey,
		Class: string(enr.Class), Injection: enr.Injection, ChipID: dev.ChipID(),
		Nonce: enr.Nonce, Proof: enr.Proof, Time: st.cfg.Now().UTC(), Locks: dev.LockState().String(),
	}, nil
}

// programError makes a locked bootloader's refusal (a chip locked by an
// earlier run of the batch, which the ROM's rules now refuse the image)
// the device's rejection, as the ROM's refusal at boot is; any other
// failure is the station's.
func programError(err error) error {
	if errors.Is(err, device.ErrBootloaderLocked) {
		return rejection{err}
	}
	return err
}

// The wrapper of a P-256 ECDH channel is what a PKCS #11 key store
// recognises, to wrap inside its token.
var _ keys.ECDHTransport = (*sealing.ECDHTransportKey)(nil)

// inject has the key store generate the key of an inject-class chip and
// programs it, wrapped for the chip's encrypted channel when it offers
// one. The chip's channel decides the format, not the station: for an
// HPKE channel the key store gets the chip's HPKE key, for a P-256 ECDH
// channel a keys.ECDHTransport, which an HSM key store wraps to inside its
// token and a software one wraps to in memory. The plan names the channel
// (Kind.Transport), so batch.json records which one each device used.
func (st *station) inject(ctx context.Context, dev *device.Device) error {
	var wrap keys.Wrapper
	if dev.HasChannel() {
		w, err := dev.ChannelWrapper()
		if err != nil {
			return err
		}
		wrap = w
	}
	_, blob, err := st.gen.GenerateDeviceKey(ctx, dev.Algorithm(), wrap)
	if err != nil {
		return fmt.Errorf("generate device key: %w", err)
	}
	defer clear(blob)
	return dev.InjectKey(blob, wrap != nil)
}

// checkEnrolment verifies what the IEF gave out, trusting none of it: the
// key parses under the strict policy, the identity is its hash, and the
// proof signs this station's nonce.
func checkEnrolment(enr *device.Enrolment, nonce []byte, kind Kind) error {
	pub, err := sigalg.ParsePublicKey(enr.PublicKey)
	if err != nil {
		return err
	}
	if identity.FromSPKI(enr.PublicKey) != enr.Identity {
		return fmt.Errorf("%w: identity is not the hash of the public key", ErrProof)
	}
	suite, err := sigalg.SuiteOf(pub)
	if err != nil || suite.ID() != kind.Algorithm || enr.Class != kind.Class {
		return fmt.Errorf("%w: device reports %s/%s, plan says %s", ErrProof, enr.Class, enr.Algorithm, kind)
	}
	msg := identity.ProofMessage(identity.FactoryProofContext, nonce, enr.Identity)
	if err := suite.Verify(pub, msg, enr.Proof); err != nil {
		return fmt.Errorf("%w: %v", ErrProof, err)
	}
	return nil
}

// claim reserves identity id for device seq; a second device with the same
// identity is a cloned chip or a broken generator and is refused.
func (st *station) claim(id identity.ID, seq int) error {
	st.seenMu.Lock()
	defer st.seenMu.Unlock()
	if other, ok := st.seen[id]; ok && other != seq {
		return fmt.Errorf("%w: %s already belongs to device %d", ErrDuplicate, id, other)
	}
	st.seen[id] = seq
	return nil
}

func deviceFile(seq int) string { return fmt.Sprintf("device-%07d.json", seq) }
