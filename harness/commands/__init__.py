"""Core ``bench`` commands kept in their own modules and imported only when called."""
