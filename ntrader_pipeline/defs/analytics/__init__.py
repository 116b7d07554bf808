"""Analytics across backtests: the leaderboard."""
