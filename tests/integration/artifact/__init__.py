"""The shipped artifacts (the wheel and the container image), built and run as users get them."""
