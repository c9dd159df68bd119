// Grafana's icons load SVGs over the network at run time; tests draw a plain element.
const React = require('react');

function InlineSVG({ src, title, className }) {
  return React.createElement('svg', { 'data-src': src, className, 'aria-label': title });
}

module.exports = InlineSVG;
module.exports.default = InlineSVG;
