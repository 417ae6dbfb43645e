package httpapi

import (
	"context"
	"io"
	"net/url"
	"strconv"
)

// UploadFirmware uploads an image file for a product and returns its
// record: the one created, or the one of the same image uploaded before.
func (c *Client) UploadFirmware(ctx context.Context, product string, image io.Reader) (FirmwareImage, error) {
	var out FirmwareImage
	return out, c.do(ctx, "POST", "/v1/admin/products/"+url.PathEscape(product)+"/firmware", nil, image, "application/octet-stream", &out)
}

// FirmwareQuery selects firmware images; zero fields match everything.
type FirmwareQuery struct {
	Product string
	After   string
	Limit   int
}

// ListFirmware returns one page of firmware images, by digest.
func (c *Client) ListFirmware(ctx context.Context, q FirmwareQuery) (FirmwareList, error) {
	v := url.Values{}
	if q.Product != "" {
		v.Set("product", q.Product)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out FirmwareList
	return out, c.do(ctx, "GET", PathAdminFirmware, v, nil, "", &out)
}

// GetFirmware describes one firmware image by its hex digest.
func (c *Client) GetFirmware(ctx context.Context, digest string) (FirmwareImage, error) {
	var out FirmwareImage
	return out, c.do(ctx, "GET", PathAdminFirmware+"/"+url.PathEscape(digest), nil, nil, "", &out)
}
