package fleet

import (
	"context"
	"runtime"
	"sync"
)

// chunkSize is how many devices one worker builds per job: large enough
// that channel traffic is noise next to the key derivations, small enough
// that the first devices are ready at once.
const chunkSize = 64

type chunk[T any] struct {
	first, n uint64
	out      chan chunkResult[T] // buffered 1: the worker never waits for the consumer
}

type chunkResult[T any] struct {
	items []T
	err   error
}

// Generate builds items first, first+1, …, first+count-1 with build on
// workers goroutines (GOMAXPROCS if workers <= 0) and hands them to emit in
// index order, on the calling goroutine. Building runs ahead of emit by a
// bounded number of chunks, so memory stays constant whatever count is.
// The first error from build or emit, or the context's, stops everything
// and is returned; every item before the one that failed has been emitted.
func Generate[T any](ctx context.Context, first, count uint64, workers int, build func(index uint64) (T, error), emit func(T) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// Cancel before waiting: idle workers leave only when ctx is done.
	defer func() { cancel(); wg.Wait() }()
	jobs := make(chan chunk[T])
	// pending holds the chunks in order; its capacity bounds how far the
	// builders run ahead of emit.
	pending := make(chan chunk[T], 4*workers)
	go func() {
		defer close(pending)
		for off := uint64(0); off < count; off += chunkSize {
			c := chunk[T]{first: first + off, n: min(chunkSize, count-off), out: make(chan chunkResult[T], 1)}
			select {
			case pending <- c:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Go(func() {
			for {
				var c chunk[T]
				select {
				case c = <-jobs:
				case <-ctx.Done():
					return
				}
				items := make([]T, 0, c.n)
				var err error
				for i := range c.n {
					if err = ctx.Err(); err != nil {
						break
					}
					var item T
					if item, err = build(c.first + i); err != nil {
						break
					}
					items = append(items, item)
				}
				c.out <- chunkResult[T]{items, err}
			}
		})
	}
	for c := range pending {
		var res chunkResult[T]
		select {
		case res = <-c.out:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, item := range res.items {
			if err := emit(item); err != nil {
				return err
			}
		}
		if res.err != nil {
			return res.err
		}
	}
	return ctx.Err()
}
