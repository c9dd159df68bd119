// Builds the plugin's frontend into dist/ as an AMD module Grafana loads; react and the
// @grafana packages come from Grafana at run time (externals). Same output as the
// @grafana/create-plugin toolchain, with only the parts this plugin uses.
const path = require('path');
const CopyWebpackPlugin = require('copy-webpack-plugin');
const pkg = require('./package.json');

const externals = [
  'react',
  'react-dom',
  'rxjs',
  'lodash',
  '@emotion/css',
  '@emotion/react',
  '@grafana/data',
  '@grafana/ui',
  '@grafana/runtime',
  '@grafana/i18n',
  ({ request }, callback) => {
    // sub-paths of Grafana's packages are Grafana's too
    if (/^@grafana\/(data|ui|runtime|i18n)\//.test(request)) {
      return callback(undefined, request);
    }
    callback();
  },
];

module.exports = (env = {}) => ({
  mode: env.production ? 'production' : 'development',
  devtool: env.production ? 'source-map' : 'eval-source-map',
  context: path.join(__dirname, 'src'),
  entry: { module: './module.ts' },
  externals,
  output: {
    path: path.join(__dirname, 'dist'),
    filename: '[name].js',
    library: { type: 'amd' },
    publicPath: `public/plugins/flowwatch-flowwatch-datasource/`,
    uniqueName: 'flowwatch-flowwatch-datasource',
    clean: { keep: /^(gpx_|go_plugin_build_manifest)/ }, // the backend is built into dist/ too
  },
  resolve: { extensions: ['.ts', '.tsx', '.js', '.jsx'] },
  module: {
    rules: [
      {
        test: /\.[tj]sx?$/,
        exclude: /node_modules/,
        use: {
          loader: 'swc-loader',
          options: {
            jsc: {
              target: 'es2018',
              parser: { syntax: 'typescript', tsx: true },
            },
          },
        },
      },
    ],
  },
  plugins: [
    new CopyWebpackPlugin({
      patterns: [
        {
          from: 'plugin.json',
          to: '.',
          transform: (content) =>
            content
              .toString()
              .replace('%VERSION%', pkg.version)
              .replace('%TODAY%', new Date().toISOString().slice(0, 10)),
        },
        { from: '../README.md', to: '.' },
        { from: '../../LICENSE', to: '.' }, // Grafana's plugin validator wants the licence in the archive
        { from: 'img', to: 'img' },
      ],
    }),
  ],
  performance: { hints: false },
});
