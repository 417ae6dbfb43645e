package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// checkpointEvery is how many downloaded bytes the agent syncs and
// records in the journal at once: a power loss costs at most this much
// of the download, and the journal is not rewritten for every packet.
const checkpointEvery = 256 << 10

// Reason codes of the agent's own, beside device.ReasonCode's and
// firmware.ReasonCode's.
const (
	ReasonDigestMismatch  = "digest-mismatch"  // the downloaded bytes are not the image the platform named
	ReasonSizeMismatch    = "size-mismatch"    // the platform served another size than it named
	ReasonDownloadRefused = "download-refused" // the platform refused to serve the image
)

// download fetches the image into the partial file from the journal's
// offset, checkpointing as it goes, then checks size and digest.
func (a *Agent) download(ctx context.Context, j *journal) error {
	if err := a.report(ctx, j, Report{State: StateDownloading}); err != nil {
		return err
	}
	f, err := os.OpenFile(PartialPath(a.StatePath), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("download: %w", err)
	} else if fi.Size() < j.Offset {
		// The partial file lost what the journal says was synced (it was
		// removed by hand, say): start over rather than trust a hole.
		j.Offset = 0
	}
	// Bytes past the checkpoint may be torn by the power loss: drop them.
	if err := f.Truncate(j.Offset); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if j.Offset < j.Image.Size {
		if err := a.fetch(ctx, j, f); err != nil {
			return err
		}
		if j.Step != stepDownload { // concluded: size mismatch or refused
			return nil
		}
	}
	return a.verify(j, f)
}

// fetch appends the rest of the image to f.
func (a *Agent) fetch(ctx context.Context, j *journal, f *os.File) error {
	a.printf("downloading: from byte %d of %d", j.Offset, j.Image.Size)
	body, total, err := a.Transport.Download(ctx, j.Image.Path, j.Offset)
	if errors.Is(err, ErrRefused) {
		return a.fail(j, ReasonDownloadRefused, err.Error())
	}
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer body.Close()
	if total != j.Image.Size {
		return a.fail(j, ReasonSizeMismatch, fmt.Sprintf("the platform serves %d bytes for an image of %d", total, j.Image.Size))
	}
	if _, err := f.Seek(j.Offset, io.SeekStart); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	buf := make([]byte, 32<<10)
	unsynced := int64(0)
	// One byte more than the rest of the image: a longer body is a
	// size mismatch, not a longer image.
	src := io.LimitReader(body, j.Image.Size-j.Offset+1)
	for {
		n, rerr := src.Read(buf)
		if int64(n) > j.Image.Size-j.Offset {
			return a.fail(j, ReasonSizeMismatch, fmt.Sprintf("the platform serves more than the image's %d bytes", j.Image.Size))
		}
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return fmt.Errorf("download: %w", err)
			}
			j.Offset += int64(n)
			if unsynced += int64(n); unsynced >= checkpointEvery {
				if err := a.checkpoint(j, f); err != nil {
					return err
				}
				unsynced = 0
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if err := a.checkpoint(j, f); err != nil {
				return err
			}
			return fmt.Errorf("download interrupted at byte %d of %d (the next attempt resumes there): %w", j.Offset, j.Image.Size, rerr)
		}
	}
	if err := a.checkpoint(j, f); err != nil {
		return err
	}
	if j.Offset != j.Image.Size {
		return fmt.Errorf("download interrupted at byte %d of %d (the next attempt resumes there): %w", j.Offset, j.Image.Size, io.ErrUnexpectedEOF)
	}
	return nil
}

// checkpoint syncs the partial file, then records its length: the
// journal never claims bytes that are not on disk.
func (a *Agent) checkpoint(j *journal, f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	return j.save(JournalPath(a.StatePath))
}

// verify checks the complete partial file against the digest.
func (a *Agent) verify(j *journal, f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, j.Image.Size+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != j.Image.Size || got != j.Image.Digest {
		// Start afresh next time: these bytes are not worth resuming.
		f.Close()
		if err := os.Remove(PartialPath(a.StatePath)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("download: %w", err)
		}
		return a.fail(j, ReasonDigestMismatch, fmt.Sprintf("the downloaded image has SHA-256 %s, not %s", short(got), short(j.Image.Digest)))
	}
	a.printf("downloaded: %d bytes, SHA-256 verified", n)
	j.Step, j.Before = stepInstall, a.Device.LastUpdate()
	return j.save(JournalPath(a.StatePath))
}

// fail concludes the assignment as failed; the old image keeps running.
func (a *Agent) fail(j *journal, reason, detail string) error {
	return a.conclude(j, StateFailed, reason, detail)
}
