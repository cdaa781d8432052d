"""What the ad platforms share: their data namespace, ground truth and the
accounts a stand-in user reaches."""

from . import data
from .core import CLOCK, Reply, parse_day


class AdData:
    data_ns = None      # the data set's provider name (YouTube reads Google Ads')

    def accounts_view(self, user):
        ns = self.data_ns or self.name
        return [{"id": a, "currency": data.currency_of(ns, a),
                 "campaigns": data.campaign_count(ns, a)} for a in data.accounts_of(ns, user)]

    def truth(self, req):
        ns = self.data_ns or self.name
        account = req.q("account")
        if not account:
            raise Reply(400, {"error": "account is required"})
        since = parse_day(req.q("since")) if req.q("since") else data.DATA_START
        until = parse_day(req.q("until")) if req.q("until") else CLOCK.today()
        channel = set(req.q("channel").split(",")) if req.q("channel") else None
        by = req.q("by", "total")
        if by not in ("total", "day", "campaign"):
            raise Reply(400, {"error": "by is total, day or campaign"})
        out = data.truth_ads(ns, account, since, until, req.q("final") in ("1", "true"),
                             channel, by)
        out["late_days"] = data.LATE_DAYS
        out["late_share"] = data.LATE
        if req.q("campaigns"):
            out["campaigns"] = [{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                 for k, v in c.items()} for c in data.campaigns(ns, account)]
        return Reply(200, out)


def range_days(since, until):
    return max(since, data.DATA_START), min(until, CLOCK.today())
