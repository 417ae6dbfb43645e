package httpapi

import (
	"context"
	"net/url"
	"strconv"
)

// The admin client's campaign calls (hallmark admin campaign).

// CreateCampaign creates a campaign.
func (c *Client) CreateCampaign(ctx context.Context, req CampaignRequest) (Campaign, error) {
	var out Campaign
	return out, c.doJSON(ctx, "POST", PathAdminCampaigns, req, &out)
}

// ListCampaigns lists campaigns, newest first; state and product may be
// empty.
func (c *Client) ListCampaigns(ctx context.Context, state, product string) ([]Campaign, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if product != "" {
		v.Set("product", product)
	}
	var out CampaignList
	return out.Campaigns, c.do(ctx, "GET", PathAdminCampaigns, v, nil, "", &out)
}

// GetCampaign returns a campaign with its progress.
func (c *Client) GetCampaign(ctx context.Context, id string) (Campaign, error) {
	var out Campaign
	return out, c.do(ctx, "GET", PathAdminCampaigns+"/"+url.PathEscape(id), nil, nil, "", &out)
}

// ListCampaignDevices returns one page of a campaign's devices.
func (c *Client) ListCampaignDevices(ctx context.Context, id, state, after string, limit int) (CampaignDeviceList, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out CampaignDeviceList
	return out, c.do(ctx, "GET", PathAdminCampaigns+"/"+url.PathEscape(id)+"/devices", v, nil, "", &out)
}

// CampaignAction pauses, resumes or cancels a campaign with reason.
func (c *Client) CampaignAction(ctx context.Context, id, action, reason string) (Campaign, error) {
	var out Campaign
	return out, c.doJSON(ctx, "POST", PathAdminCampaigns+"/"+url.PathEscape(id)+"/"+url.PathEscape(action), TransitionRequest{Reason: reason}, &out)
}
