export {
  createCa,
  describeCert,
  type IssuedCert,
  type IssueOptions,
  issueLeaf,
  type LeafSpec,
} from './issue.js';
