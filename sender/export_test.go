package sender

// Retry is the retry loop of a Sender, for its tests.
var Retry = retry
